/*
 * Native alignment checks on single instructions (see machine.py, "Alignment faults").
 *
 * An LDM/STM/LDRD/STRD whose base register is computed inside its own block cannot be checked
 * at block entry; it gets a UC_HOOK_CODE hook on its one address instead. The hook runs before
 * the instruction: if its condition passes (IT blocks) and the base register is not
 * word-aligned, it records the site and stops the emulation, so the access never happens.
 * In C because such sites can sit in hot loops (a Python hook there costs microseconds each).
 */
#include <stdint.h>
#include <stdlib.h>

#include <unicorn/unicorn.h>

typedef struct {
    uint32_t fault_addr; /* the site that would fault (0 while none) */
    uint32_t fault_base; /* its base register's value */
} asc_state_t;

typedef struct {
    asc_state_t *state;
    int reg;     /* unicorn register id of the base */
    int cond;    /* ARM condition code 0-14 (14: always) */
    uc_hook hook;
} asc_site_t;

static int cond_holds(int cond, uint32_t xpsr) {
    int n = (xpsr >> 31) & 1, z = (xpsr >> 30) & 1, c = (xpsr >> 29) & 1, v = (xpsr >> 28) & 1;
    switch (cond) {
    case 0: return z;
    case 1: return !z;
    case 2: return c;
    case 3: return !c;
    case 4: return n;
    case 5: return !n;
    case 6: return v;
    case 7: return !v;
    case 8: return c && !z;
    case 9: return !c || z;
    case 10: return n == v;
    case 11: return n != v;
    case 12: return !z && n == v;
    case 13: return z || n != v;
    default: return 1;
    }
}

static void on_site(uc_engine *uc, uint64_t address, uint32_t size, void *user) {
    (void)size;
    asc_site_t *site = user;
    uint32_t base = 0, xpsr = 0;
    uc_reg_read(uc, site->reg, &base);
    if (!(base & 3))
        return;
    if (site->cond != 14) {
        uc_reg_read(uc, UC_ARM_REG_XPSR, &xpsr);
        if (!cond_holds(site->cond, xpsr))
            return;
    }
    site->state->fault_addr = (uint32_t)address;
    site->state->fault_base = base;
    uc_emu_stop(uc);
}

asc_site_t *asc_add(uc_engine *uc, asc_state_t *state, uint32_t addr, int reg, int cond) {
    asc_site_t *site = calloc(1, sizeof *site);
    if (!site)
        return NULL;
    site->state = state;
    site->reg = reg;
    site->cond = cond;
    if (uc_hook_add(uc, &site->hook, UC_HOOK_CODE, (void *)on_site, site, addr, addr) != UC_ERR_OK) {
        free(site);
        return NULL;
    }
    return site;
}

void asc_del(uc_engine *uc, asc_site_t *site) {
    if (!site)
        return;
    uc_hook_del(uc, site->hook);
    free(site);
}
