"""The AtomNet demo (``make demo``'s main job): search → train → quantize → deploy → verify.

On the STM32H743 setting of the paper (521 ms, 512 KB SRAM, 2 MB Flash) scaled down so that it
finishes in a few minutes on two cores: 10 Fashion-MNIST classes at 32 × 32 pixels, every
limit divided by ``SCALE`` (8). Steps:

1. search the hybrid space (Table 2's pattern, 32 px) under the scaled limits from AtomDB
   (atoms missing from the demo's AtomDB file are profiled on the emulated H743 first; that
   one-time fill is timed separately) and print the Pareto front. When the shared H743
   measurements (``../shared/data/atomdb-h743-calibration.csv``) are there, the AtomDB is
   first calibrated against them (once: all rows, the calibration package), so the search
   keeps a network whose *calibrated* latency — the upper end of its 90 % interval, what a real
   NUCLEO-H743 with X-CUBE-AI is predicted to take — meets the latency limit; without them the
   raw emulated latency is used;
2. train the chosen network briefly on Fashion-MNIST (seeded, CPU);
3. quantize it to int8 (post-training), float vs int8 accuracy;
4. export the .tflite, build the network firmware and run test images on the emulated H743:
   logits bit-exact with the host int8 reference and TFLite Micro, board accuracy = host int8
   accuracy;
5. print predicted (search) vs measured (emulated board) MACs, SRAM, Flash and latency (the
   raw emulated sum against the emulated run, like for like), the calibrated board latency
   beside the limit, and
   the accuracies: float and int8 on 1000 host test images; "board acc." is the host int8
   accuracy on the board's images (predicted column) beside the board's own (measured).

Run: ``python -m atomnet.demo`` (``--quick`` for fewer images and epochs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

SCALE = 8
H743 = (521.0, 512 * 1024, 2048 * 1024)  # METHOD.md: latency ms, SRAM B, Flash B
RESOLUTION = 32
CLASSES = 10


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0 when every check passed."""
    parser = argparse.ArgumentParser(prog="python -m atomnet.demo", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer training images, one epoch, 20 board images")
    parser.add_argument("--images", type=int, default=None, help="test images on the board")
    parser.add_argument("--db", default=None, help="AtomDB file (default build/atomnet-demo/)")
    args = parser.parse_args(argv)

    import torch
    from rich.console import Console
    from rich.table import Table

    from atomnet.config import StageConfig
    from atomnet.data import fashion_mnist
    from atomnet.deploy import check, comparison_rows, deploy
    from atomnet.export_tflite import to_tflite
    from atomnet.quantize import evaluate_int8, post_training_quantize
    from atomnet.search import Limits, predict, search, write_config
    from atomnet.space import get_space
    from atomnet.train import TrainConfig, evaluate, train
    from atomsim.core.errors import AtomSimError
    from atomsim.core.paths import build_dir

    console = Console()
    say = console.rule
    out_dir = build_dir() / "atomnet-demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    db = args.db or out_dir / "atoms.db"
    board = "stm32h743"
    limits = Limits(H743[0] / SCALE, H743[1] // SCALE, H743[2] // SCALE)
    n_train, epochs = (2000, 1) if args.quick else (5000, 2)
    n_board = args.images or (20 if args.quick else 50)
    torch.set_num_threads(1)  # 2 shared cores: one thread is faster and deterministic
    t_all = time.perf_counter()
    try:
        say(f"1/5 search: hybrid space at {RESOLUTION} px, {CLASSES} classes, on {board} "
            f"with the paper's H743 limits / {SCALE}")
        console.print(f"limits: latency {limits.latency_ms:g} ms, SRAM "
                      f"{limits.sram_bytes / 1024:g} KB, Flash {limits.flash_bytes / 1024:g} KB; "
                      f"AtomDB {db}", highlight=False)
        space = get_space("hybrid", num_classes=CLASSES, resolutions=(RESOLUTION,))
        calibration_id = _calibrate_once(space, board, db, console)
        result = search(space, board, limits, db, strategy="evolution", budget=60_000,
                        time_limit_s=20, log=lambda m: console.print(m, highlight=False))
        from atomnet.cli import print_front

        print_front(result)
        chosen = result.chosen
        cfg_path = write_config(chosen, out_dir / "chosen.json")
        console.print(f"chosen config: {cfg_path}", highlight=False)

        say(f"2/5 train on Fashion-MNIST ({n_train} images, {epochs} epochs, CPU)")
        config = StageConfig.from_dict(chosen.config)
        train_set = fashion_mnist("train", RESOLUTION, limit=n_train)
        test_set = fashion_mnist("test", RESOLUTION, limit=1000)
        t0 = time.perf_counter()
        trained = train(config, train_set, TrainConfig(epochs=epochs, batch_size=64,
                                                       base_lr=1.6, seed=0, device="cpu"),
                        progress=True)
        train_s = time.perf_counter() - t0
        f_acc = evaluate(trained.model, test_set)
        console.print(f"float accuracy on {len(test_set)} test images: {100 * f_acc:.2f} % "
                      f"({train_s:.0f} s, {n_train * epochs / train_s:.0f} images/s)",
                      highlight=False)

        say("3/5 int8 post-training quantization")
        q = post_training_quantize(trained.model, train_set, count=256)
        q_acc = evaluate_int8(q, test_set)
        console.print(f"int8 accuracy {100 * q_acc:.2f} % (float {100 * f_acc:.2f} %, "
                      f"{100 * (q_acc - f_acc):+.2f} points)", highlight=False)

        say(f"4/5 deploy: .tflite → network firmware → {n_board} test images on the emulated "
            f"{board}")
        buf = to_tflite(q)
        (out_dir / "chosen.tflite").write_bytes(buf)
        q.save(out_dir / "chosen.q")  # for ``atomsim atomnet deploy`` by hand
        x = test_set.int8_inputs(range(n_board))
        dep = deploy(board, x, test_set.labels[:n_board], qmodel=q, tflite=buf,
                     log=lambda m: console.print(m, highlight=False))
        # Like for like: the raw emulated prediction against the emulated run; the calibrated
        # figures (what the real board is predicted to take) get their own row.
        raw, _ = predict(chosen.config, board, db, calibrated="off", log=lambda m: None)
        dep.predicted = replace(chosen.metrics, latency_ms=raw.latency_ms)
        board_ms = None
        if calibration_id is not None:
            mid, _ = predict(chosen.config, board, db, calibrated="mid", log=lambda m: None)
            board_ms = (mid.latency_ms, chosen.metrics.latency_ms)
        check(dep)  # NotBitExact when any logit differs

        say("5/5 predicted (search, from AtomDB) vs measured (emulated board)")
        table = Table(title=f"{board}, limits / {SCALE}: latency {limits.latency_ms:g} ms, "
                            f"SRAM {limits.sram_bytes / 1024:g} KB, Flash "
                            f"{limits.flash_bytes / 1024:g} KB")
        for col in ("figure", "predicted", "measured", "difference", "limit"):
            table.add_column(col, justify="left" if col == "figure" else "right",
                             no_wrap=True)
        lim = {"MACs": "-", "peak SRAM": f"{limits.sram_bytes / 1024:g} KB",
               "Flash": f"{limits.flash_bytes / 1024:g} KB",
               "latency": f"{limits.latency_ms:g} ms"}
        for name, pred, meas, diff in comparison_rows(dep):
            table.add_row("latency, emulated" if name == "latency" else name, pred, meas,
                          diff, "-" if board_ms and name == "latency" else lim[name])
        if board_ms is not None:
            table.add_row("latency, H743 cal.", f"{board_ms[0]:.1f} ms (≤{board_ms[1]:.1f})",
                          "-", "-", lim["latency"])
        host_acc = dep.host_accuracy
        table.add_row("float acc.", "-", f"{100 * f_acc:.2f} %", "-", "-")
        table.add_row("int8 acc.", "-", f"{100 * q_acc:.2f} %",
                      f"{100 * (q_acc - f_acc):+.2f} pt", "-")
        table.add_row("board acc.", f"{100 * host_acc:.2f} %", f"{100 * dep.board_accuracy:.2f} %",
                      "equal" if host_acc == dep.board_accuracy else "DIFFERENT", "-")
        console.print(table)
        # The latency limit is the real board's: with a calibration, the predicted board
        # latency (upper end) must meet it; without, the emulated run.
        latency_ok = (board_ms[1] if board_ms else dep.latency_ms) <= limits.latency_ms
        fits = (latency_ok and dep.sram["peak"] <= limits.sram_bytes
                and dep.flash["total"] <= limits.flash_bytes)
        tflm = {None: "not checked (tflite_micro missing)", True: "yes", False: "NO"}
        console.print(
            f"logits on the board == host int8: {tflm[dep.host_exact]}; == TFLite Micro: "
            f"{tflm[dep.tflm_exact]}; fits all three limits on the board: "
            f"{'yes' if fits else 'NO'}"
            f"{' (latency: calibrated, upper end)' if board_ms else ''}\n"
            f"search {result.search_s:.1f} s (+ one-time AtomDB fill {result.fill_s:.1f} s, "
            f"{result.profiled_atoms} atoms), training {train_s:.0f} s, deploy "
            f"{dep.wall_s:.0f} s; total {time.perf_counter() - t_all:.0f} s\n"
            f"latency: {result.latency_note}", highlight=False)
        (out_dir / "result.json").write_text(json.dumps(
            {"search": result.to_dict(), "deploy": dep.to_dict(), "float_accuracy": f_acc,
             "int8_accuracy": q_acc}, indent=2, default=str))
        ok = fits and dep.host_exact and dep.tflm_exact is not False \
            and host_acc == dep.board_accuracy
        return 0 if ok else 1
    except AtomSimError as exc:
        console.print(f"[red]demo failed:[/red] {type(exc).__name__}: {exc}")
        return getattr(exc, "exit_code", 1) or 1


def _calibrate_once(space, board: str, db, console) -> str | None:
    """Calibrate the demo's AtomDB against the shared H743 measurements, once (a calibration
    already in the file is reused). Returns the calibration id, or None without the file."""
    from atomnet.search import Evaluator, latest_calibration
    from atomsim.core.paths import shared_data_dir
    from atomsim.db import AtomDB

    csv = shared_data_dir() / "atomdb-h743-calibration.csv"
    if not csv.is_file():
        console.print(f"no {csv}: the search uses raw emulated latencies", highlight=False)
        return None
    ev = Evaluator(space, board, db, calibrated="off", log=lambda m: console.print(
        m, highlight=False))
    ev.prepare()  # the space's atoms in the AtomDB, to be calibrated
    with AtomDB.open(db) as atomdb:
        cal_id = latest_calibration(atomdb, board, ev.variant)
    if cal_id is not None:
        console.print(f"calibration {cal_id} (in {db}) gives the board latencies",
                      highlight=False)
        return cal_id
    from calibration.calibrate import calibrate
    from calibration.measurements import read_csv

    console.print(f"calibrating {board} from {csv.name} (all rows; once, about two minutes: "
                  "the space's and the file's atoms run with the traffic counter) …",
                  highlight=False)
    cal = calibrate(read_csv(csv), board, db, variant=ev.variant, workers=2)
    console.print(f"calibration {cal.id}: the search uses each atom's calibrated latency "
                  "(upper end of its 90 % interval)", highlight=False)
    return cal.id


if __name__ == "__main__":
    sys.exit(main())
