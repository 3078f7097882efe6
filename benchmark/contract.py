"""The output contract every model keeps (README, "Add your own model"), checked before a model's first job.

Eval mode: logits (N, num_classes, H, W) at the input's size (a tuple is read as (main, *aux)).
Train mode: the main logits, or (main, *aux) with one `aux_weights` entry per element, each
(N, num_classes, h, w); auxiliary outputs may be smaller than the input (the loss upsamples them).
A model registered with `low_res_logits=True` may also return main logits smaller than its input:
they are upsampled (bilinear) before the argmax and the loss, and its records say so
(`model_info.low_res_logits`).

`contract_problems` runs one small batch through a fresh model in each mode: on the CPU for a small
model (quicker than the meta device's dispatch), on the meta device for a large one (shapes only: no
memory, no arithmetic), then on the CPU where its forward needs real values (`.item()`). The answer
is kept per model and settings for the life of the process.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import torch

CHECK_BATCH = 2
CPU_CHECK_MAX_PARAMS = 5_000_000  # above this, the check runs on the meta device first
LOW_RES_HINT = ("; a model whose logits are smaller by design declares low_res_logits=True in register_model "
                "(they are then upsampled)")


def check_side(min_input_size: int, input_multiple: int) -> int:
    """The side of the square input the check runs: at least 64 px and the model's minimum, a multiple of its step."""
    step = max(input_multiple, 1)
    return math.ceil(max(64, min_input_size) / step) * step


def main_output(output: Any) -> Any:
    """The main logits of a model's output (the first element when it returns a tuple or list)."""
    return output[0] if isinstance(output, (tuple, list)) and output else output


def logits_problem(
    logits: Any, input_shape: Sequence[int], num_classes: int | None, low_res: bool, what: str = "eval logits"
) -> str | None:
    """Why `logits` are not (N, num_classes, H, W) for an input (N, C, H, W); None when they are.

    `num_classes` None accepts any count from 2 (one channel would argmax to background everywhere);
    `low_res` accepts a smaller H and W.
    """
    if not isinstance(logits, torch.Tensor):
        return f"{what} are a {type(logits).__name__}, not a tensor"
    n, _, height, width = (int(v) for v in input_shape)
    shape = tuple(int(v) for v in logits.shape)
    classes = num_classes if num_classes is not None else "C>=2"
    expected = f"({n}, {classes}, {height}, {width})"
    if len(shape) != 4 or shape[0] != n:
        return f"{what} are {shape} for an input of {tuple(input_shape)}; expected {expected}"
    channels_ok = shape[1] == num_classes if num_classes is not None else shape[1] >= 2
    if not channels_ok:
        return (f"{what} have {shape[1]} channel(s) {shape} for an input of {tuple(input_shape)}; expected {expected} "
                f"({'num_classes=' + str(num_classes) if num_classes is not None else 'one per class, at least 2'})")
    size_ok = shape[2:] == (height, width) or (low_res and 0 < shape[2] <= height and 0 < shape[3] <= width)
    if not size_ok:
        return (f"{what} are {shape} for an input of {tuple(input_shape)}; expected {expected} "
                f"(logits at the input's size){'' if low_res else LOW_RES_HINT}")
    return None


def train_output_problems(
    output: Any, input_shape: Sequence[int], num_classes: int, aux_weights: Sequence[float], low_res: bool,
    check_main: bool = True,
) -> list[str]:
    """Why a train-mode output does not fit `aux_weights` (count) and the logits contract (each element; the
    main one unless `check_main` is False)."""
    outputs = tuple(output) if isinstance(output, (tuple, list)) else (output,)
    if len(outputs) != len(aux_weights):
        return [f"train mode returns {len(outputs)} output(s) but its aux_weights {tuple(aux_weights)} expect "
                f"{len(aux_weights)} (main, then one per auxiliary head)"]
    problems = [logits_problem(outputs[0], input_shape, num_classes, low_res, "train-mode main logits")
                if check_main else None]
    problems += [logits_problem(aux, input_shape, num_classes, True, f"train-mode output {i}")
                 for i, aux in enumerate(outputs[1:], start=1)]
    return [p for p in problems if p]


def contract_problems(
    model: str, aux_weights: Sequence[float] | None = None, num_classes: int = 2, train: bool = True
) -> list[str]:
    """One line per way `model` breaks the contract on a small input (eval, and train unless `train` is False).

    `aux_weights`: the ones it trains with (default: its registry entry's).
    """
    from models import get_model_info

    info = get_model_info(model)
    weights = tuple(float(w) for w in (aux_weights or info.aux_weights))
    return list(_problems(info, info.builder, weights, num_classes, train))


@functools.lru_cache(maxsize=512)
def _problems(info: Any, builder: Any, aux_weights: tuple[float, ...], num_classes: int,
              train: bool) -> tuple[str, ...]:
    """`contract_problems` for one registry entry (`builder` is in the key: a name can be registered anew)."""
    side = check_side(info.min_input_size, info.input_multiple)
    shape = (CHECK_BATCH, 3, side, side)
    for device in _devices(info.name, num_classes):
        try:
            eval_out, train_out = _run(info.name, shape, num_classes, train, device)
            break
        except Exception as err:  # noqa: BLE001 - meta lacks a kernel or a value; on the CPU it is the model's fault
            failure = err
    else:
        text = (str(failure).strip().splitlines() or [""])[0]
        return (f"{info.name}: fails on a {shape} input ({type(failure).__name__}: {text}); its min_input_size and "
                f"input_multiple say which inputs it takes",)
    eval_problem = logits_problem(main_output(eval_out), shape, num_classes, info.low_res_logits)
    problems = [eval_problem] if eval_problem else []
    if train:  # main logits already wrong in eval mode are not reported twice
        problems += train_output_problems(train_out, shape, num_classes, aux_weights, info.low_res_logits,
                                          check_main=eval_problem is None)
    return tuple(f"{info.name}: {p}" for p in problems)


def _devices(name: str, num_classes: int) -> tuple[str, ...]:
    """Where to run the check, in order: the CPU alone for a small model, the meta device then the CPU for a large one."""
    from models import create_model

    try:
        with torch.device("meta"):
            params = sum(p.numel() for p in create_model(name, num_classes=num_classes).parameters())
    except Exception:  # noqa: BLE001 - the builder fails: the CPU run reports it
        return ("cpu",)
    return ("cpu",) if params <= CPU_CHECK_MAX_PARAMS else ("meta", "cpu")


def _run(name: str, shape: tuple[int, ...], num_classes: int, train: bool, device: str) -> tuple[Any, Any]:
    """(eval output, train output or None) of a fresh `name` on a random batch of `shape` on `device`.

    The global random generators are left as they were (a run seeds them later, but evaluate does not).
    """
    from models import create_model

    with torch.random.fork_rng(devices=[]), torch.device(device), torch.no_grad():
        model = create_model(name, num_classes=num_classes)
        batch = torch.randn(shape)
        eval_out = model.eval()(batch)
        train_out = model.train()(batch) if train else None
    return eval_out, train_out
