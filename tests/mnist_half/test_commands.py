"""The README's commands keep their flags: each `python -m mnist_half.<command> --help` exits 0
and lists every flag the README names for it."""

import pytest

README_FLAGS = {
    "train": ["--model", "--preset", "--device", "--iters", "--batch-size", "--optimizer", "--lr", "--noise",
              "--hidden", "--layers", "--dropout", "--literal-eq13", "--seed", "--data", "--official-split", "--out",
              "--checkpoint-every", "--resume", "--target-blend", "--target-neighbours", "--members",
              "--no-cuda-graph"],
    "evaluate": ["--checkpoint", "--json", "--samples", "--device", "--limit", "--batch-size", "--no-progress"],
    "classifier": ["--data", "--official-split", "--out", "--device", "--seed", "--no-progress"],
    "complete": ["--checkpoint", "--input", "--output", "--samples", "--device", "--batch-size"],
    "figures": ["--runs", "--out", "--count"],
    "demo": ["--checkpoint", "--host", "--port", "--open"],
}


@pytest.mark.parametrize("command", list(README_FLAGS))
def test_help_lists_the_readme_flags(run_cli, capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(command, ["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith(f"usage: python -m mnist_half.{command}")
    missing = [flag for flag in README_FLAGS[command] if flag not in usage]
    assert not missing, missing
