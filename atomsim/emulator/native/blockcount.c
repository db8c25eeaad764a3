/*
 * Native basic-block counter for the embedded emulator.
 *
 * Registered with Unicorn as a UC_HOOK_BLOCK callback, it runs once per executed translation
 * block, entirely in C: it counts executions of each block, whether the block was left by a
 * taken branch or by falling through, the instructions retired and the modelled cycles. The
 * timing model itself lives in Python and is consulted once per *distinct* block (the
 * `describe` callback), never per execution.
 *
 * Written by hand because no library offers counting hooks for Unicorn; it is deliberately
 * small: an open-addressing hash table and a few counters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unicorn/unicorn.h>

/* What the timing model says about one block (filled by the describe callback). */
typedef struct {
    uint32_t n_insn;     /* instructions in the block */
    /* cycles when the block is left by falling through; signed: a block the emulator cut is
     * charged its marginal cost in front of the code it falls into, which can be -1 */
    int32_t cost_fall;
    uint32_t cost_taken; /* cycles when it is left by a taken branch */
    uint32_t flags;      /* ASB_FLAG_* */
} asb_desc_t;

enum {
    ASB_FLAG_HALT = 1u, /* a branch to itself: the firmware has finished */
    /* Alignment checks at block entry: bits 8-22 name up to three base registers, 5 bits each
     * (r + 1; 0 = none), that must be word-aligned when the block starts (see machine.py). */
    ASB_FLAG_ALIGN = 2u,
};

typedef struct {
    uint32_t addr;
    uint32_t size;
    asb_desc_t d;
    uint64_t count; /* executions */
    uint64_t taken; /* executions left through a taken branch */
} asb_block_t;

enum {
    ASB_RUNNING = 0,
    ASB_STOP_BUDGET = 1,   /* instruction budget spent */
    ASB_STOP_HALT = 2,     /* reached a halt block */
    ASB_STOP_DESCRIBE = 3, /* the describe callback failed */
    ASB_STOP_NOMEM = 4,
    ASB_STOP_CYCLES = 5, /* cycle budget reached (a timed slice of emulated time) */
    ASB_STOP_ALIGN = 6,  /* an LDM/STM/LDRD/STRD of the block would be unaligned */
};

typedef int (*asb_describe_fn)(uint32_t addr, uint32_t size, asb_desc_t *out);

/* State shared with Python (read through a ctypes Structure with the same layout). */
typedef struct {
    uint64_t instructions; /* retired, including the current block */
    uint64_t cycles;       /* completed blocks only: the current block is added when left */
    uint64_t budget;       /* stop once instructions >= budget */
    uint64_t cycle_budget; /* stop once cycles >= cycle_budget */
    uint64_t blocks_executed;
    uint32_t stop_reason;
    uint32_t halt_addr;
    uint32_t n_blocks; /* distinct blocks */
    uint32_t capacity; /* table size (power of two) */
    asb_block_t *table;
    int64_t prev; /* index of the block being executed, -1 before the first */
    asb_describe_fn describe;
    uc_hook hook;
} asb_state_t;

static uint32_t slot_of(uint32_t addr, uint32_t size, uint32_t mask) {
    uint32_t h = (addr >> 1) * 2654435761u ^ size * 40503u;
    return h & mask;
}

static int grow(asb_state_t *s) {
    uint32_t cap = s->capacity ? s->capacity * 2 : 4096;
    asb_block_t *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    int64_t new_prev = -1;
    for (uint32_t i = 0; i < s->capacity; i++) {
        asb_block_t *b = &s->table[i];
        if (!b->size)
            continue;
        uint32_t j = slot_of(b->addr, b->size, cap - 1);
        while (t[j].size)
            j = (j + 1) & (cap - 1);
        t[j] = *b;
        if ((int64_t)i == s->prev)
            new_prev = j;
    }
    free(s->table);
    s->table = t;
    s->capacity = cap;
    s->prev = new_prev;
    return 0;
}

static void on_block(uc_engine *uc, uint64_t address, uint32_t size, void *user) {
    asb_state_t *s = user;
    uint32_t addr = (uint32_t)address;

    /* Close the previous block: taken if we did not arrive at its fall-through address. */
    if (s->prev >= 0) {
        asb_block_t *p = &s->table[s->prev];
        if (addr != p->addr + p->size) {
            p->taken++;
            s->cycles += p->d.cost_taken;
        } else {
            s->cycles += p->d.cost_fall;
        }
    }
    if (s->cycles >= s->cycle_budget) {
        /* Pause before entering this block: the next run starts here and counts it then. */
        s->prev = -1;
        s->stop_reason = ASB_STOP_CYCLES;
        uc_emu_stop(uc);
        return;
    }
    if (size == 0) { /* Unicorn reports 0 for a block it could not size; treat as empty */
        s->prev = -1;
        return;
    }
    if ((s->n_blocks + 1) * 2 > s->capacity && grow(s) != 0) {
        s->stop_reason = ASB_STOP_NOMEM;
        uc_emu_stop(uc);
        return;
    }
    uint32_t mask = s->capacity - 1;
    uint32_t i = slot_of(addr, size, mask);
    while (s->table[i].size && !(s->table[i].addr == addr && s->table[i].size == size))
        i = (i + 1) & mask;
    asb_block_t *b = &s->table[i];
    if (!b->size) {
        b->addr = addr;
        b->size = size;
        if (s->describe(addr, size, &b->d) != 0) {
            b->size = 0;
            s->stop_reason = ASB_STOP_DESCRIBE;
            s->prev = -1;
            uc_emu_stop(uc);
            return;
        }
        s->n_blocks++;
    }
    if (b->d.flags & ASB_FLAG_ALIGN) {
        for (int k = 0; k < 3; k++) {
            uint32_t r = (b->d.flags >> (8 + 5 * k)) & 0x1F, v = 0;
            if (!r)
                continue;
            uc_reg_read(uc, UC_ARM_REG_R0 + (int)r - 1, &v);
            if (v & 3) { /* stop before the block runs: it would fault */
                s->stop_reason = ASB_STOP_ALIGN;
                s->halt_addr = addr;
                s->prev = -1;
                uc_emu_stop(uc);
                return;
            }
        }
    }
    if (b->d.flags & ASB_FLAG_HALT) {
        /* The firmware has reached its branch to itself (once, already counted): stop before
         * the loop runs again, so the figures do not depend on how long it would spin. */
        s->stop_reason = ASB_STOP_HALT;
        s->halt_addr = addr;
        s->prev = -1;
        uc_emu_stop(uc);
        return;
    }
    b->count++;
    s->blocks_executed++;
    s->instructions += b->d.n_insn;
    s->prev = i;
    if (s->instructions >= s->budget) {
        s->stop_reason = ASB_STOP_BUDGET;
        uc_emu_stop(uc);
    }
}

/* Close the block in flight (at the end of a run): it was left by falling through. */
void asb_finish(asb_state_t *s) {
    if (s->prev >= 0) {
        s->cycles += s->table[s->prev].d.cost_fall;
        s->prev = -1;
    }
}

asb_state_t *asb_new(asb_describe_fn describe) {
    asb_state_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->describe = describe;
    s->prev = -1;
    s->budget = UINT64_MAX;
    s->cycle_budget = UINT64_MAX;
    if (grow(s) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

int asb_attach(asb_state_t *s, uc_engine *uc) {
    return uc_hook_add(uc, &s->hook, UC_HOOK_BLOCK, (void *)on_block, s, 1, 0);
}

int asb_detach(asb_state_t *s, uc_engine *uc) {
    return uc_hook_del(uc, s->hook);
}

/* The block being executed (its address and size), for the idle-loop check; 0 if none. */
int asb_current(const asb_state_t *s, uint32_t *addr, uint32_t *size) {
    if (s->prev < 0)
        return 0;
    *addr = s->table[s->prev].addr;
    *size = s->table[s->prev].size;
    return 1;
}

/* Account k more executions of the block in flight, each left by its taken branch: used when
 * that block is a side-effect-free polling loop whose outcome cannot change (see machine.py),
 * so k iterations leave registers and memory exactly as they are. */
void asb_repeat_current(asb_state_t *s, uint64_t k) {
    if (s->prev < 0 || k == 0)
        return;
    asb_block_t *b = &s->table[s->prev];
    b->count += k;
    b->taken += k;
    s->blocks_executed += k;
    s->instructions += k * b->d.n_insn;
    s->cycles += k * b->d.cost_taken;
}

/* Copy out the blocks with a non-zero count: the Python side builds the profile from these. */
uint32_t asb_export(const asb_state_t *s, asb_block_t *out, uint32_t max) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->capacity && n < max; i++)
        if (s->table[i].size)
            out[n++] = s->table[i];
    return n;
}

void asb_free(asb_state_t *s) {
    if (!s)
        return;
    free(s->table);
    free(s);
}

/*
 * Memory traffic per region (optional; see counter.TrafficCounter).
 *
 * A UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE callback bins every data access by address into a
 * small table of ranges set once per machine (each mapping of each board memory is one range,
 * sorted by start; several ranges may name the same memory, e.g. flash and its alias at 0).
 * Counts reads, writes and their bytes per memory; accesses outside every range (peripherals,
 * the system control space) go to the last slot. Instruction fetches are not data accesses
 * and are not counted. Binary search: a board has at most a few dozen ranges.
 */
typedef struct {
    uint32_t lo, hi; /* [lo, hi) */
    uint32_t slot;   /* index into the counters */
    uint32_t pad_;
} ast_range_t;

typedef struct {
    uint64_t reads, writes, read_bytes, write_bytes;
} ast_count_t;

typedef struct {
    uint32_t n_ranges;
    uint32_t n_slots; /* memories + 1 (the last: outside every memory) */
    ast_range_t *ranges;
    ast_count_t *counts;
    uc_hook hook;
} ast_state_t;

static void on_mem(uc_engine *uc, uc_mem_type type, uint64_t address, int size, int64_t value,
                   void *user) {
    (void)uc;
    (void)value;
    ast_state_t *s = user;
    uint32_t addr = (uint32_t)address;
    uint32_t lo = 0, hi = s->n_ranges, slot = s->n_slots - 1;
    while (lo < hi) { /* the last range whose start is <= addr */
        uint32_t mid = (lo + hi) / 2;
        if (s->ranges[mid].lo <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && addr < s->ranges[lo - 1].hi)
        slot = s->ranges[lo - 1].slot;
    ast_count_t *c = &s->counts[slot];
    if (type == UC_MEM_WRITE) {
        c->writes++;
        c->write_bytes += (uint32_t)size;
    } else {
        c->reads++;
        c->read_bytes += (uint32_t)size;
    }
}

/* ranges: n triples (lo, hi, slot) sorted by lo, non-overlapping; slots < n_slots - 1. */
ast_state_t *ast_new(const uint32_t *ranges, uint32_t n, uint32_t n_slots) {
    ast_state_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ranges = calloc(n ? n : 1, sizeof *s->ranges);
    s->counts = calloc(n_slots, sizeof *s->counts);
    if (!s->ranges || !s->counts) {
        free(s->ranges);
        free(s->counts);
        free(s);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        s->ranges[i].lo = ranges[3 * i];
        s->ranges[i].hi = ranges[3 * i + 1];
        s->ranges[i].slot = ranges[3 * i + 2];
    }
    s->n_ranges = n;
    s->n_slots = n_slots;
    return s;
}

int ast_attach(ast_state_t *s, uc_engine *uc) {
    return uc_hook_add(uc, &s->hook, UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, (void *)on_mem, s, 1,
                       0);
}

int ast_detach(ast_state_t *s, uc_engine *uc) {
    return uc_hook_del(uc, s->hook);
}

void ast_clear(ast_state_t *s) {
    memset(s->counts, 0, s->n_slots * sizeof *s->counts);
}

/* Copy the counters out: n_slots records of four uint64 (reads, writes, read/write bytes). */
void ast_export(const ast_state_t *s, uint64_t *out) {
    memcpy(out, s->counts, s->n_slots * sizeof *s->counts);
}

void ast_free(ast_state_t *s) {
    if (!s)
        return;
    free(s->ranges);
    free(s->counts);
    free(s);
}
