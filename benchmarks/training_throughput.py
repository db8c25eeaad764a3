"""AtomNet training throughput on this machine: images per second, plus inference rates.

The network and data are those of tests/test_atomnet_pipeline.py (a 32 x 32 stage config with
every block type, Fashion-MNIST). Reported, each the median of ``--trials`` timed runs after
one warm-up:

- training images/s (forward + backward + SGD step, batch ``--batch-size``);
- float inference images/s (PyTorch, batch 256);
- int8 host inference images/s (integer-only forward with AtomSim's reference kernels, one image
  at a time, as the deployed network runs).

Run:  .venv/bin/python benchmarks/training_throughput.py [--images 2048] [--trials 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import torch

from atomnet.config import StageConfig
from atomnet.data import fashion_mnist
from atomnet.quantize import post_training_quantize, run_int8
from atomnet.train import TrainConfig, build_model, train

SPEC = {"input_resolution": 32, "num_classes": 10,
        "depth": [1, 1, 2, 2], "out_channel": [16, 16, 24, 32],
        "block_type_stage": ["conv", "mobile_one", "mbconv", "mbconvnext"],
        "act_stages": ["relu6", "relu6", "hswish", "relu"], "se_stages": [False, False, True, True],
        "stride_stages": [2, 1, 2, 2], "kernel_size": [3, 3, 3, 5], "expand_ratio": [1, 1, 3, 3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048, help="training images per trial")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--int8-images", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's, one per core)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    config = StageConfig.from_dict(SPEC)
    data = fashion_mnist("train", config.input_resolution, limit=args.images)
    recipe = TrainConfig(epochs=1, batch_size=args.batch_size, seed=0, device=args.device)
    train(config, data.subset(min(len(data), 4 * args.batch_size)), recipe)  # warm-up
    train_rates = [train(config, data, recipe).history[0]["images_per_s"]
                   for _ in range(args.trials)]

    model = build_model(config).eval()
    x, _ = data.batch(range(min(256, len(data))))
    float_rates = []
    with torch.no_grad():
        model(x)
        for _ in range(args.trials):
            t = time.perf_counter()
            model(x)
            float_rates.append(len(x) / (time.perf_counter() - t))

    q = post_training_quantize(model, data, count=64)
    xi = data.int8_inputs(range(min(args.int8_images, len(data))))
    int8_rates = []
    for _ in range(args.trials):
        t = time.perf_counter()
        run_int8(q, xi)
        int8_rates.append(len(xi) / (time.perf_counter() - t))

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), device {args.device}, "
          f"{datetime.date.today().isoformat()}, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"network: {config.input_resolution} px, {config.num_blocks} blocks; "
          f"training batch {args.batch_size}, {len(data)} images per trial, "
          f"median of {args.trials}")
    print()
    print("| measurement | images/s (median) | min | max |")
    print("|---|---|---|---|")
    for name, rates in (("training (fwd + bwd + SGD)", train_rates),
                        ("float inference, batch 256", float_rates),
                        ("int8 host inference, 1 image at a time", int8_rates)):
        print(f"| {name} | {statistics.median(rates):,.0f} | {min(rates):,.0f} | "
              f"{max(rates):,.0f} |")


if __name__ == "__main__":
    main()
