/* har firmware harness: a QEMU TCG plugin (plugin API version 1, QEMU 7.2) counting executed guest instructions.
 *
 * Arguments: begin=ADDR,end=ADDR (the entry addresses of the firmware's prof_begin()/prof_end() markers, Thumb bit
 * cleared) and out=PATH. Every translated instruction gets an inline "counter += 1"; the first instruction of each
 * marker gets a callback that snapshots the counter. At exit PATH receives "total N" (all instructions executed)
 * and one "region N" line per begin/end pair, in execution order (N = instructions from begin to end).
 * Single vCPU only (the Cortex-M machines have one). docs/firmware.md, "Counting instructions". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t total;        /* instructions executed so far */
static uint64_t begin_at;     /* counter value at the last prof_begin */
static int in_region;
static uint64_t begin_pc, end_pc;
static const char *out_path;
static uint64_t *regions;
static size_t n_regions, cap_regions;

static void on_begin(unsigned int vcpu, void *udata) {
    (void)vcpu, (void)udata;
    begin_at = total;
    in_region = 1;
}

static void on_end(unsigned int vcpu, void *udata) {
    (void)vcpu, (void)udata;
    if (!in_region) return;
    in_region = 0;
    if (n_regions == cap_regions) {
        cap_regions = cap_regions ? 2 * cap_regions : 1024;
        regions = realloc(regions, cap_regions * sizeof *regions);
        if (!regions) abort();
    }
    regions[n_regions++] = total - begin_at;  /* instructions from prof_begin's entry to prof_end's entry */
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc == begin_pc) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (pc == end_pc) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &total, 1);
    }
}

static void write_counts(qemu_plugin_id_t id, void *udata) {
    (void)id, (void)udata;
    FILE *f = fopen(out_path, "w");
    if (!f) return;
    fprintf(f, "total %" PRIu64 "\n", total);
    for (size_t i = 0; i < n_regions; i++) fprintf(f, "region %" PRIu64 "\n", regions[i]);
    fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "begin=", 6) == 0) begin_pc = strtoull(argv[i] + 6, NULL, 0);
        else if (strncmp(argv[i], "end=", 4) == 0) end_pc = strtoull(argv[i] + 4, NULL, 0);
        else if (strncmp(argv[i], "out=", 4) == 0) out_path = argv[i] + 4;
        else {
            fprintf(stderr, "insn_regions: unknown argument %s\n", argv[i]);
            return 1;
        }
    }
    if (!out_path) {
        fprintf(stderr, "insn_regions: out=PATH is required\n");
        return 1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
