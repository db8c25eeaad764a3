"""``atomsim atomnet train | quantize | export | summary | search | deploy``: the AtomNet verbs.

    atomsim atomnet train CONFIG.json --data fashion-mnist --epochs 5 --checkpoint-dir ck/
    atomsim atomnet quantize ck/last.pt --data fashion-mnist --out model.q
    atomsim atomnet export model.q --out model.tflite
    atomsim atomnet summary CONFIG.json          # per-layer shapes, MACs, parameters
    atomsim atomnet search --board stm32h743 --latency-ms 521 --sram-kb 512 --flash-kb 2048 \
        --db atoms.db --out net.json             # Pareto front from AtomDB, chosen config
    atomsim atomnet deploy model.q --board stm32h743 --images 20   # emulated board, bit-exact

Imports torch only inside ``run`` (the CLI's protocol: registering stays light).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from atomsim.cli.options import verb_parser
from atomsim.core.errors import ConfigError


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``atomnet`` verb and its sub-commands."""
    parser = verb_parser(subparsers, "atomnet",
                         "search, train, quantize, export and deploy AtomNet models")
    sub = parser.add_subparsers(dest="atomnet_command", required=True, metavar="COMMAND")

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default="fashion-mnist",
                       help="fashion-mnist, or an ImageFolder directory (train/ and val/ "
                            "sub-directories, or class directories directly)")
        p.add_argument("--limit", type=int, default=None, help="use the first N images")
        p.add_argument("--test-limit", type=int, default=1000,
                       help="evaluate on the first N test images (default 1000)")

    t = verb_parser(sub, "train", "train a stage config with the paper's recipe")
    t.add_argument("stage_config", type=Path, help="stage config JSON")
    data_options(t)
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--base-lr", type=float, default=0.4,
                   help="learning rate at batch 1024, scaled linearly (default 0.4)")
    t.add_argument("--weight-decay", type=float, default=3e-4)
    t.add_argument("--label-smoothing", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    t.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: one per core; 1 is faster on a busy "
                        "shared machine; results depend on it, so resume with the same)")
    t.add_argument("--checkpoint-dir", type=Path, default=Path("atomnet-checkpoints"))
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    t.add_argument("--init", type=Path, default=None,
                   help="fine-tune: start from this checkpoint's weights (head skipped when "
                        "the class count differs)")

    q = verb_parser(sub, "quantize", "int8 post-training quantization; float vs int8 accuracy")
    q.add_argument("checkpoint", type=Path, help="checkpoint written by train (last.pt)")
    data_options(q)
    q.add_argument("--calibration-images", type=int, default=256)
    q.add_argument("--qat-epochs", type=int, default=0,
                   help="quantization-aware fine-tuning epochs after PTQ (default 0: PTQ only)")
    q.add_argument("--qat-lr", type=float, default=0.005)
    q.add_argument("--out", type=Path, required=True, help="quantized model file to write")

    s = verb_parser(sub, "summary", "per-layer table of a stage config: shapes, MACs, params")
    s.add_argument("stage_config", type=Path, help="stage config JSON")

    e = verb_parser(sub, "export", "write the quantized model as an int8 .tflite")
    e.add_argument("qmodel", type=Path, help="file written by quantize")
    e.add_argument("--out", type=Path, required=True, help=".tflite file to write")
    e.add_argument("--pad-in-conv", action="store_true",
                   help="TFLite-converter style: SAME padding inside the convolutions "
                        "(default: an explicit PAD + VALID convolution, the graph the search "
                        "costs; see docs/atomnet.md)")

    f = verb_parser(sub, "search", "zero-cost search under latency, SRAM and Flash limits")
    f.add_argument("--board", required=True)
    f.add_argument("--latency-ms", type=float, required=True)
    f.add_argument("--sram-kb", type=float, required=True, help="peak SRAM limit (KB = 1024 B)")
    f.add_argument("--flash-kb", type=float, required=True, help="Flash limit (KB = 1024 B)")
    f.add_argument("--out", type=Path, required=True, help="chosen stage config JSON to write")
    f.add_argument("--db", type=Path, default=Path("atomdb.sqlite"),
                   help="AtomDB file; missing atoms are profiled into it (default atomdb.sqlite)")
    f.add_argument("--space", default="hybrid", help="hybrid | sep | convnext | mbconv")
    f.add_argument("--strategy", default="evolution", help="exhaustive | random | evolution")
    f.add_argument("--kernels", default="3", help="kernel sizes of non-stem stages: 3, 5 or 3,5")
    f.add_argument("--num-classes", type=int, default=1000)
    f.add_argument("--resolutions", default=None,
                   help="comma-separated input resolutions (default: METHOD.md's nine)")
    f.add_argument("--budget", type=int, default=200_000, help="candidates (random, evolution)")
    f.add_argument("--time-limit", type=float, default=30.0, help="seconds for the strategy")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--full-grid", action="store_true",
                   help="exhaustive over every width (default: every other width)")
    f.add_argument("--latency", default="high", choices=("high", "mid", "off"),
                   help="with a calibration: interval upper end (default), point estimate, or "
                        "off (raw emulated latency)")
    f.add_argument("--variant", default=None, help="kernel variant (default: the profiler's)")

    d = verb_parser(sub, "deploy", "run a quantized model on the emulated board, bit-exact")
    d.add_argument("model", type=Path, help="file written by quantize, or its .tflite")
    d.add_argument("--board", required=True)
    d.add_argument("--data", default="fashion-mnist")
    d.add_argument("--images", type=int, default=20, help="test images to run (default 20)")
    d.add_argument("--qmodel", type=Path, default=None,
                   help="with a .tflite MODEL: the quantize output it came from (host int8 "
                        "reference)")
    d.add_argument("--search", type=Path, default=None,
                   help="search result JSON (--json output of search) for predicted figures")
    d.add_argument("--variant", default=None)
    return parser


def run(args: argparse.Namespace) -> int:
    """Dispatch to the sub-command."""
    if args.atomnet_command == "search":  # no torch needed
        return _search(args)
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ConfigError("atomnet needs PyTorch: pip install -e '.[atomnet]' (the CPU wheel "
                          "torch==2.13.0)") from exc
    for flag in ("limit", "test_limit", "calibration_images", "epochs", "batch_size"):
        value = getattr(args, flag, None)  # a negative count sliced the data from the end
        if value is not None and value < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1, got {value}")
    if getattr(args, "qat_epochs", 0) < 0:
        raise ConfigError(f"--qat-epochs must be >= 0, got {args.qat_epochs}")
    return {"train": _train, "quantize": _quantize, "export": _export,
            "summary": _summary, "deploy": _deploy}[args.atomnet_command](args)


def _summary(args) -> int:
    from rich.table import Table

    from atomnet.config import load_stage_config
    from atomnet.model import AtomNet, summarize, total_macs, total_params
    from atomsim.cli.output import console, print_json

    config = load_stage_config(args.stage_config)
    rows = summarize(AtomNet(config))
    if getattr(args, "json", False):
        print_json({"layers": [r.as_dict() for r in rows], "macs": total_macs(rows),
                    "params": total_params(rows)})
        return 0
    table = Table(title=f"{args.stage_config} ({config.input_resolution} px)")
    for col in ("layer", "type", "in (C,H,W)", "out (C,H,W)", "k", "s", "act", "MACs",
                "params"):
        table.add_column(col, justify="right" if col in ("MACs", "params", "k", "s")
                         else "left", overflow="fold")
    for r in rows:
        table.add_row(r.name, r.type, "x".join(map(str, r.in_shape)),
                      "x".join(map(str, r.out_shape)), str(r.kernel or ""),
                      str(r.stride or ""), r.activation, f"{r.macs:,}", f"{r.params:,}")
    console.print(table)
    console.print(f"total: {total_macs(rows):,} MACs (paper convention), "
                  f"{total_params(rows):,} parameters after BN folding")
    return 0


def _emit(args, data: dict, text: str) -> None:
    from atomsim.cli.output import emit

    emit(args, data, text)


def _train(args) -> int:
    import torch

    from atomnet.config import load_stage_config
    from atomnet.data import load_dataset
    from atomnet.train import TrainConfig, evaluate, train

    config = load_stage_config(args.stage_config)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    r = config.input_resolution
    data = load_dataset(args.data, "train", r, args.limit)
    if len(data.classes) > config.num_classes:
        raise ConfigError(f"{args.stage_config}: num_classes is {config.num_classes} but "
                          f"{args.data} has {len(data.classes)} classes")
    from atomsim.core.paths import writable_dir

    existing = args.checkpoint_dir  # checked before any work, created by train only
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    writable_dir(existing, f"--checkpoint-dir {args.checkpoint_dir}")
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, base_lr=args.base_lr,
                      weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
                      seed=args.seed, device=args.device)
    result = train(config, data, cfg, checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                   init=args.init, progress=not getattr(args, "json", False))
    test = load_dataset(args.data, "test", r, args.test_limit)
    acc = evaluate(result.model, test, device=args.device)
    _emit(args, {"checkpoint": str(args.checkpoint_dir / "last.pt"), "history": result.history,
                 "test_images": len(test), "float_accuracy": acc},
          f"trained {len(result.history)} epochs; float accuracy on {len(test)} test images: "
          f"{100 * acc:.2f} %; checkpoint {args.checkpoint_dir / 'last.pt'}")
    return 0


def _check_out(path: Path, what: str) -> None:
    """``path`` can be written as a file (checked before the work that makes it)."""
    from atomsim.core.paths import writable_dir

    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a directory; name a file")
    writable_dir(path.parent, f"{what} {path}")


def _quantize(args) -> int:
    from atomnet.data import load_dataset
    from atomnet.quantize import evaluate_int8, post_training_quantize
    from atomnet.train import evaluate, model_from_checkpoint

    _check_out(args.out, "--out")
    model = model_from_checkpoint(args.checkpoint)
    r = model.config.input_resolution
    calib = load_dataset(args.data, "train", r, args.calibration_images)
    q = post_training_quantize(model, calib, args.calibration_images)
    test = load_dataset(args.data, "test", r, args.test_limit)
    f_acc, q_acc = evaluate(model, test), evaluate_int8(q, test)
    result = {"out": str(args.out), "test_images": len(test), "float_accuracy": f_acc,
              "int8_accuracy": q_acc}
    text = (f"{len(test)} test images: float {100 * f_acc:.2f} %, int8 (post-training) "
            f"{100 * q_acc:.2f} % ({100 * (q_acc - f_acc):+.2f} points)")
    if args.qat_epochs > 0:
        from atomnet.qat import finetune

        train_set = load_dataset(args.data, "train", r, args.limit)
        q = finetune(q, train_set, epochs=args.qat_epochs, lr=args.qat_lr)
        result["int8_accuracy_qat"] = qat_acc = evaluate_int8(q, test)
        text += f", int8 after {args.qat_epochs} QAT epochs {100 * qat_acc:.2f} %"
    q.save(args.out)
    _emit(args, result, f"{text}; wrote {args.out}")
    return 0


def _export(args) -> int:
    from atomnet.export_tflite import export_tflite, read_qmodel

    q = read_qmodel(args.qmodel)  # named before --out's folder is made
    _check_out(args.out, "--out")
    path = export_tflite(q, args.out, pad_in_conv=args.pad_in_conv)
    size = path.stat().st_size
    style = "padding inside the convolutions" if args.pad_in_conv else "explicit PAD ops"
    _emit(args, {"out": str(path), "bytes": size, "pad_in_conv": args.pad_in_conv},
          f"wrote {path} ({size:,} bytes, {style})")
    return 0


def _search(args) -> int:
    from atomnet.search import Limits, search, write_config
    from atomnet.space import get_space
    from atomsim.cli.output import console, print_json

    def ints(text: str, what: str) -> tuple[int, ...]:
        try:
            return tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"--{what}: expected comma-separated integers, got {text!r}"
                              ) from None

    _check_out(args.out, "--out")
    if args.budget < 1:
        raise ConfigError(f"--budget must be >= 1 candidate, got {args.budget}")
    if not 0 < args.time_limit < float("inf"):  # also NaN
        raise ConfigError(f"--time-limit must be a positive number of seconds, got "
                          f"{args.time_limit}")
    for flag, value in (("--sram-kb", args.sram_kb), ("--flash-kb", args.flash_kb)):
        if not -float("inf") < value < float("inf"):  # NaN too: int() of it was a ValueError
            raise ConfigError(f"{flag} must be a finite number, got {value}")
    quiet = getattr(args, "json", False)
    space = get_space(args.space, num_classes=args.num_classes,
                      kernels=ints(args.kernels, "kernels"),
                      resolutions=None if args.resolutions is None
                      else ints(args.resolutions, "resolutions"))
    limits = Limits(args.latency_ms, int(args.sram_kb * 1024), int(args.flash_kb * 1024))
    result = search(space, args.board, limits, args.db, strategy=args.strategy,
                    budget=args.budget, time_limit_s=args.time_limit, seed=args.seed,
                    full_grid=args.full_grid, variant=args.variant, calibrated=args.latency,
                    log=(lambda _m: None) if quiet else
                    (lambda m: console.print(m, highlight=False)))
    write_config(result.chosen, args.out)
    if quiet:
        print_json(result.to_dict() | {"out": str(args.out)})
        return 0
    print_front(result)
    console.print(f"wrote the chosen config ({result.chosen.metrics.macs:,} MACs) to {args.out}",
                  highlight=False)
    return 0


def describe(config: dict) -> str:
    """A stage config in one short line: r128 C16 S16 S96x2 N112e6x2 ... (C conv, S SEP,
    N ConvNext, M MBConv; e expansion, x depth, k5 kernel 5, + SE)."""
    short = {"conv": "C", "mobile_one": "S", "mbconvnext": "N", "mbconv": "M"}
    parts = [f"r{config['input_resolution']}"]
    for i, block in enumerate(config["block_type_stage"]):
        e, k, d = config["expand_ratio"][i], config["kernel_size"][i], config["depth"][i]
        parts.append(short[block] + str(config["out_channel"][i])
                     + (f"e{e:g}" if block in ("mbconvnext", "mbconv") else "")
                     + ("k5" if k == 5 else "") + ("+" if config["se_stages"][i] else "")
                     + (f"x{d}" if d > 1 else ""))
    return " ".join(parts)


def print_front(result) -> None:
    """The front as a rich table, and how the search went."""
    from rich.table import Table

    from atomsim.cli.output import console

    lim = result.limits
    table = Table(title=f"{result.space} space on {result.board}: Pareto front (MACs vs "
                        f"latency) at SRAM {lim.sram_bytes / 1024:g} KB, Flash "
                        f"{lim.flash_bytes / 1024:g} KB, latency <= {lim.latency_ms:g} ms")
    for col in ("MACs", "ms", "SRAM KB", "Flash KB", "network"):
        table.add_column(col, justify="left" if col == "network" else "right",
                         no_wrap=col != "network")
    for p in result.front:
        m = p.metrics
        table.add_row(f"{m.macs / 1e6:.1f}M", f"{m.latency_ms:.1f}",
                      f"{p.planned_sram_bytes / 1024:.1f}", f"{m.flash_bytes / 1024:.1f}",
                      describe(p.config))
    console.print(table)
    console.print(
        f"{result.strategy}: {result.evaluated:,} candidates evaluated "
        f"({result.feasible:,} fit; {result.covered:,} of {result.space_size:,} decided) in "
        f"{result.search_s:.1f} s; block costs {result.prepare_s:.1f} s; one-time DB fill "
        f"{result.fill_s:.1f} s ({result.profiled_atoms} atoms profiled)\n"
        f"latency: {result.latency_note}\n"
        "network: r resolution, C conv, S SEP, N ConvNext, M MBConv, e expansion, + SE, "
        "x depth", highlight=False)
    for r in result.rejected[:5]:
        console.print(f"refused by the memory planner: {r}", highlight=False)
    if len(result.rejected) > 5:
        console.print(f"... {len(result.rejected) - 5} more refused", highlight=False)


def _deploy(args) -> int:
    from atomnet.data import load_dataset
    from atomnet.deploy import check, deploy, load_model, print_result
    from atomsim.cli.output import console, print_json

    if args.images < 1:
        raise ConfigError(f"--images must be >= 1, got {args.images}")
    predicted = _predicted(args.search) if args.search is not None else None  # before work
    qmodel, buf = load_model(args.model, args.qmodel)
    resolution = qmodel.resolution if qmodel is not None else None
    if resolution is None:
        from atomsim.nn.frontends import tflite_import

        graph = tflite_import.from_bytes(buf, args.model.name)
        resolution = graph.tensors[graph.inputs[0]].shape[1]
    test = load_dataset(args.data, "test", resolution, args.images)
    quiet = getattr(args, "json", False)
    result = deploy(args.board, test.int8_inputs(range(len(test))), test.labels,
                    qmodel=qmodel, tflite=buf, variant=args.variant,
                    log=(lambda _m: None) if quiet else
                    (lambda m: console.print(m, highlight=False)))
    if predicted is not None:
        result.predicted = predicted
    if quiet:
        print_json(result.to_dict())
    else:
        print_result(result)
    check(result)
    return 0


def _predicted(path: Path):
    """The chosen point's metrics from a search result written with --json."""
    import json

    from atomnet.search import Metrics

    try:
        data = json.loads(Path(path).read_text())
        point = data["front"][-1]
        return Metrics(**{k: point[k] for k in ("macs", "latency_ms", "sram_bytes",
                                                "arena_bytes", "flash_bytes", "layers")})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--search {path}: not a search result (--json output): {exc}"
                          ) from None
