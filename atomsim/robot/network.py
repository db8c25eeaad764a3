"""Robot keywords for whole networks: ``Library    atomsim.robot.network.NetworkLibrary``.

``Profile Network    MODEL    BOARD`` plans, builds and runs a .tflite, stage config or MCUNet
config on an emulated board (atomsim.profiling.network.profile_model); the budget keywords then
check the last profile and fail with the measured figure, the limit and what makes it up, as
``atomsim profile --budget`` does.
"""

from __future__ import annotations

from robot.api import logger

from atomsim.boards import get_board
from atomsim.core.errors import AtomSimError
from atomsim.profiling.profiler import DEFAULT_VARIANT
from atomsim.robot.monitor import resolve_path


class NetworkLibrary:
    """Profile networks and assert their latency, SRAM and Flash budgets."""

    ROBOT_LIBRARY_SCOPE = "SUITE"

    def __init__(self) -> None:
        self._profile = None

    def profile_network(self, model: str, board: str, variant: str = DEFAULT_VARIANT,
                        seed: int = 0):
        """Run ``model`` on ``board``; returns the profile as a dictionary (status ok/oom)."""
        from atomsim.nn.frontends import load_model
        from atomsim.profiling.network import profile_model

        graph = load_model(resolve_path(model), seed=int(seed))
        self._profile = profile_model(graph, get_board(board), variant, seed=int(seed))
        p = self._profile
        if p.status == "ok":
            logger.info(f"{p.model} on {p.board}: {p.latency_ms:.3f} ms, peak SRAM "
                        f"{p.sram['peak']} B, Flash {p.flash['total']} B")
        else:
            logger.info(f"{p.model} on {p.board}: OOM: {p.message}")
        return p.to_dict()

    def network_should_fit(self) -> None:
        """Fail with the planner's OOM message when the last network did not fit."""
        p = self._last()
        if p.status != "ok":
            raise AssertionError(f"{p.model} does not fit {p.board}: {p.message}")

    def network_should_not_fit(self) -> None:
        """Fail when the last network fitted its board."""
        p = self._last()
        if p.status == "ok":
            raise AssertionError(f"{p.model} fits {p.board} (peak SRAM {p.sram['peak']} B)")

    def network_output_should_match_reference(self) -> None:
        """The board's output equals the numpy int8 reference of the graph, bit for bit."""
        p = self._fitted()
        if not p.exact:
            raise AssertionError(f"{p.model} on {p.board}: the output differs from the numpy "
                                 "reference")

    def network_latency_should_be_below(self, limit_ms: float) -> None:
        """Latency at the board clock, in milliseconds."""
        p = self._fitted()
        if not p.latency_ms < float(limit_ms):
            raise AssertionError(f"latency {p.latency_ms:.3f} ms ({p.cycles} cycles at "
                                 f"{p.clock_hz / 1e6:g} MHz) of {p.model} on {p.board} is not "
                                 f"below the budget of {float(limit_ms):g} ms")

    def network_peak_sram_should_be_below(self, limit_kb: float) -> None:
        """Peak SRAM (arena + scratch + static + stack) in KB (1024 bytes)."""
        p = self._fitted()
        s = p.sram
        if not s["peak"] < float(limit_kb) * 1024:
            raise AssertionError(
                f"peak SRAM {s['peak']} bytes (arena {s['arena']} + scratch {s['scratch']} + "
                f"static {s['static']} + stack {s['stack']}) of {p.model} on {p.board} is not "
                f"below the budget of {float(limit_kb):g} KB")

    def network_flash_should_be_below(self, limit_kb: float) -> None:
        """Flash of the image (weights + graph + code) in KB (1024 bytes)."""
        p = self._fitted()
        f = p.flash
        if not f["total"] < float(limit_kb) * 1024:
            raise AssertionError(
                f"Flash {f['total']} bytes (weights {f['weights']} + graph {f['graph']} + "
                f"code {f['code']}) of {p.model} on {p.board} is not below the budget of "
                f"{float(limit_kb):g} KB")

    def _last(self):
        if self._profile is None:
            raise AtomSimError("no network profiled yet: call Profile Network first")
        return self._profile

    def _fitted(self):
        p = self._last()
        if p.status != "ok":
            raise AssertionError(f"{p.model} does not fit {p.board}: {p.message}")
        return p
