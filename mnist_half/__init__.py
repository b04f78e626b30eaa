"""mnist-half: the MNIST data, its corruption (Figure 5), the CNN-LSTM with direct attention and its commands."""
