"""Memory planning: no two live tensors share a byte, in place only where kernels allow, OOM."""

from pathlib import Path

import pytest

from atomsim.boards import get_board
from atomsim.core.errors import ConfigError
from atomsim.nn.frontends import load_model
from atomsim.nn.graph import Graph
from atomsim.nn.lowering import GraphBuilder, Tensor
from atomsim.nn.ops import buffers
from atomsim.nn.planner import (
    SCRATCH,
    ArenaDoesNotFit,
    Bank,
    Buffer,
    arena_buffers,
    board_banks,
    plan,
)

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONFIGS = DATA / "mcunet-configs"
BIG = [Bank("sram", 1 << 30)]


def models():
    paths = sorted(CONFIGS.glob("*.json")) + sorted((DATA / "tflite").glob("*.tflite"))
    if not paths:
        pytest.skip(f"shared data absent: {DATA}")
    return paths


def assert_no_live_overlap(g: Graph, p) -> None:
    """Independent of MemoryPlan.check: byte ranges of tensors live at one op are disjoint."""
    where = {t: (pl.bank, pl.offset, pl.size) for pl in p.placements for t in pl.tensors}
    life = g.lifetimes()
    for i in range(len(g.ops)):
        live = [t for t, (a, b) in life.items() if a <= i <= b]
        spans = sorted({where[t] for t in live})  # aliased tensors share one span
        for (b1, o1, s1), (b2, o2, _) in zip(spans, spans[1:], strict=False):
            assert b1 != b2 or o1 + s1 <= o2, f"op {i}: {spans}"
        if p.scratch_bytes:
            bank, off, size = where[SCRATCH]
            assert all(b != bank or o + s <= off or off + size <= o for b, o, s in spans)


@pytest.mark.parametrize("variant", ["reference", "cortex_m_dsp"])
def test_every_model_plans_without_overlap(variant):
    for path in models():
        g = load_model(path, seed=None)
        p = plan(g, BIG, variant=variant)
        assert_no_live_overlap(g, p)
        biggest_op = max(p.live_bytes[i] - p.scratch_per_op[i] for i in range(len(g.ops)))
        everything = sum(t.nbytes for t in g.activations()) + 4 * len(g.tensors)
        assert biggest_op <= p.total_arena_bytes <= everything
        assert p.peak_bytes == max(p.live_bytes)


def test_scratch_is_the_largest_kernel_need_of_the_variant():
    g = Graph()
    x = g.add_input((1, 8, 8, 16))
    w = g.add_tensor((32, 3, 3, 16), const=True)
    y = g.add_op("conv", [x, w], padding=(1, 1, 1, 1))
    w2 = g.add_tensor((1, 3, 3, 32), const=True)
    z = g.add_op("dw", [y, w2], padding=(1, 1, 1, 1))
    g.outputs.append(z)
    assert plan(g, BIG).scratch_bytes == 0
    p = plan(g, BIG, variant="cortex_m_dsp")
    want = [buffers.conv_s8_get_buffer_size((1, 8, 8, 16), (32, 3, 3, 16), (1, 8, 8, 32),
                                            "cortex_m_dsp"),
            buffers.depthwise_conv_s8_get_buffer_size((1, 8, 8, 32), (1, 3, 3, 32),
                                                      (1, 8, 8, 32), "cortex_m_dsp")]
    assert list(p.scratch_per_op) == want and p.scratch_bytes == max(want) > 0
    assert p.live_bytes[0] == 8 * 8 * 16 + 8 * 8 * 32 + want[0]
    # the scratch region follows the activation arena: SRAM = arena + scratch
    assert p.offset_of(SCRATCH) == ("sram", p.total_arena_bytes)


def test_in_place_only_for_elementwise_kernels_whose_input_dies():
    g = Graph()
    x = g.add_input((1, 4, 4, 8))
    a = g.add_op("hard_swish", [x])  # x is read again below: no in place
    b = g.add_op("relu", [a])  # a dies here: in place
    c = g.add_op("add", [x, b])  # add may not write over its inputs
    g.outputs.append(c)
    p = plan(g, BIG)
    assert p.offset_of(b) == p.offset_of(a)
    assert p.offset_of(a) != p.offset_of(x)
    assert len({p.offset_of(t) for t in (x, b, c)}) == 3
    assert p.total_arena_bytes == 3 * 128


def test_a_reshape_is_a_view():
    g = Graph()
    x = g.add_input((1, 2, 2, 8))
    r = g.add_op("reshape", [x], shape=(1, 1, 1, 32))
    w = g.add_tensor((4, 32), const=True)
    y = g.add_op("fc", [r, w])
    g.outputs.append(y)
    p = plan(g, BIG)
    assert p.offset_of(r) == p.offset_of(x)
    assert p.total_arena_bytes == 32 + 4


def test_buffers_go_to_the_next_bank_when_the_first_is_full():
    b = GraphBuilder()
    x = b.input(Tensor(16, 32, 32))  # 16 KB
    y = b.conv(x, 16, 1, 1)
    b.graph.outputs.append(y)
    p = plan(b.graph, [Bank("dtcm", 20_000), Bank("axi", 100_000)])
    assert {b.graph.tensors[t].name: pl.bank for pl in p.placements for t in pl.tensors} \
        == {"input": "dtcm", "pw0": "axi"}


def test_oom_names_the_live_tensors_and_the_bytes_over():
    b = GraphBuilder()
    x = b.input(Tensor(16, 32, 32))
    y = b.conv(x, 32, 3, 1)  # pad 16x34x34 -> conv 32x32x32
    b.graph.outputs.append(y)
    g = b.graph
    need = 16 * 34 * 34 + 32 * 32 * 32  # pad output and conv output live together
    assert plan(g, [Bank("sram", need)]).total_arena_bytes == need
    with pytest.raises(ArenaDoesNotFit) as e:
        plan(g, [Bank("sram", need - 100)])
    err = e.value
    assert err.over == 100 and err.peak_bytes == need and err.peak_op == 1
    assert "pad0 (18496 B)" in str(err) and "conv1 (32768 B)" in str(err)
    assert "100 bytes more" in str(err) and err.deficit == 100
    with pytest.raises(ArenaDoesNotFit, match="needs 1000 bytes more"):
        plan(g, [Bank("a", 31_768), Bank("b", 31_000)])  # the conv output fits no bank alone


def test_board_banks_fit_the_small_models_and_refuse_the_big_ones():
    paths = {p.stem: p for p in models()}
    if "mcunet-10fps_imagenet" not in paths:
        pytest.skip("mcunet configs absent")
    small = load_model(paths["mcunet-10fps_imagenet"], seed=None)
    big = load_model(paths["mcunet-512kb-2mb_imagenet"], seed=None)
    for board in ("stm32f412", "stm32f746", "stm32h743"):
        banks = board_banks(get_board(board))
        assert plan(small, banks, variant="cortex_m_dsp").total_arena_bytes < banks[0].size
        with pytest.raises(ArenaDoesNotFit, match="live there: pw5"):
            plan(big, banks, variant="cortex_m_dsp")
    assert board_banks(get_board("stm32f746"))[0].address == 0x2000_0000


def test_reserved_bytes_of_a_bank_are_not_planned_and_the_oom_names_them():
    b = GraphBuilder()
    x = b.input(Tensor(16, 32, 32))
    y = b.conv(x, 32, 3, 1)  # pad 16x34x34 -> conv 32x32x32: 51,264 B live together
    b.graph.outputs.append(y)
    g = b.graph
    need = 16 * 34 * 34 + 32 * 32 * 32
    p = plan(g, [Bank("sram", need + 72, reserved=72)])
    assert p.bank_usage() == {"sram": (need, need + 72)} and p.bank_reserved == {"sram": 72}
    with pytest.raises(ArenaDoesNotFit) as e:
        plan(g, [Bank("sram", need + 64, reserved=72)])
    err = e.value
    assert err.bank == "sram" and err.over == 8 and err.deficit == 8
    assert (err.needed, err.available) == (need, need - 8)
    assert (f"in sram the arena needs {need} B and has {need - 8} B ({need + 64} B less 72 B "
            "the firmware keeps there") in str(err)
    # the bank named is the one that came closest, with its own figures
    with pytest.raises(ArenaDoesNotFit) as e:
        plan(g, [Bank("small", 20_000), Bank("big", 40_000, reserved=8_000)])
    assert e.value.bank == "big" and e.value.available == 32_000
    with pytest.raises(ConfigError, match="reserved"):
        Bank("sram", 100, reserved=101)


def test_arena_buffers_merge_views_and_in_place_outputs_with_their_input():
    g = Graph()
    x = g.add_input((1, 2, 2, 8))
    r = g.add_op("reshape", [x], shape=(1, 1, 1, 32))
    a = g.add_op("relu", [r])  # r dies here: in place
    w = g.add_tensor((4, 32), const=True)
    y = g.add_op("fc", [a, w])
    g.outputs.append(y)
    bufs = arena_buffers(g)
    # a graph input is live from before the first op (-1), an output to after the last (3)
    assert sorted(bufs) == [Buffer((x, r, a), 32, -1, 2), Buffer((y,), 4, 2, 3)]
    ids, size, first, last = bufs[0]  # plain tuples to callers that unpack them
    p = plan(g, BIG)
    assert len({p.offset_of(t) for t in (x, r, a)}) == 1
    assert p.peak_bytes == max(sum(b.size for b in bufs if b.first <= i <= b.last)
                               for i in range(len(g.ops)))
