
template <typename T> __device__ T sigmoid_by_tanh(T a) {
    const T half = (T)0.5;
    return half * tanh(half * a) + half;
}

template <typename T>
__device__ void lstm_cell_forward_at(T& in_gate, T& forget_gate, T& new_state, T& out_gate,
                                     const T c_prev, const bool literal_eq13, T& c, T& tanh_c, T& h) {
    in_gate = sigmoid_by_tanh(in_gate);              // (8)
    forget_gate = sigmoid_by_tanh(forget_gate);      // (9)
    new_state = tanh(new_state);                     // (11)
    out_gate = sigmoid_by_tanh(out_gate);            // (10)
    c = forget_gate * c_prev + in_gate * new_state;  // (12)
    tanh_c = tanh(c);
    h = (literal_eq13 ? in_gate : out_gate) * tanh_c;  // (13)
}

// h = u tanh(c) with u = o (or i as printed in eq. 13): c_t gets dh's share too; then
// eq. (12), c = f c_prev + i g, and eqs. (8)-(11): sigmoid' = s - s^2, tanh' = 1 - g^2. In
// the printed form the output gate does not reach the loss; dh tanh(c) goes to the input gate.
// The gradients passed on are flushed (negligible.cuh), as tinynet.functional.lstm's are.
template <typename T>
__device__ void lstm_cell_backward_at(const T dh, const T dc, const T in_gate, const T forget_gate,
                                      const T new_state, const T out_gate, const T c_prev, const T tanh_c,
                                      const bool literal_eq13, T& da_i, T& da_f, T& da_g, T& da_o, T& dc_prev) {
    const T one = (T)1;
    const T dc_total = dc + dh * (literal_eq13 ? in_gate : out_gate) * (one - tanh_c * tanh_c);
    T d_i = dc_total * new_state;
    T d_o = dh * tanh_c;
    if (literal_eq13) {
        d_i += d_o;
        d_o = (T)0;
    }
    da_i = flushed(d_i * (in_gate - in_gate * in_gate));
    da_f = flushed(dc_total * c_prev * (forget_gate - forget_gate * forget_gate));
    da_g = flushed(dc_total * in_gate * (one - new_state * new_state));
    da_o = flushed(d_o * (out_gate - out_gate * out_gate));
    dc_prev = flushed(dc_total * forget_gate);
}
