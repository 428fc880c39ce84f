"""Firmware harness: build C/C++ firmware with the real toolchains and run it natively or on an emulated Cortex-M
(QEMU + semihosting), counting executed instructions. Facts it relies on: docs/firmware.md.

API (every function raises training.errors.HarError with one line on failure: exit 2 bad input / missing TFLM
tree, 3 toolchain or build failure, 1 failed run):

    from deploy.firmware.targets import HOST, CORTEX_M4, CORTEX_M7, target_for_core
    from deploy.firmware.build import FirmwareSources, build_firmware
    from deploy.firmware.qemu import run_firmware, FAULT_EXIT

    fw = build_firmware(
        FirmwareSources(sources=(Path("engine.c"), Path("main.c")),   # .c / .cc / .cpp
                        include_dirs=(Path("include"),),
                        defines=("-DN=4",),
                        use_tflm=False,          # True: link the cached TFLM library + its include paths
                        optimisation="-O2"),
        CORTEX_M4, out_dir, name="app",
        tflm_root=None)                          # TFLM trees: --tflm-root / $HAR_TFLM_ROOT (only if use_tflm)
    fw.path                                      # the ELF (QEMU targets) or native executable (HOST)
    fw.sizes.text, fw.sizes.data, fw.sizes.bss   # arm-none-eabi-size (Berkeley); `size` on the host
    fw.warnings                                  # compiler diagnostics of your sources, () when clean
    r = run_firmware(fw, stdin=b"...", cwd=folder, count=True, tflm_root=None, timeout=600)
    r.exit_code, r.stdout, r.stderr              # the guest's exit() code; FAULT_EXIT (99) = a CPU fault
    r.regions                                    # instructions of every prof_begin()..prof_end() pair, in order
    r.total_instructions                         # all instructions the guest executed

Your sources are compiled with TFLM's flags and warning set (`targets.py`); the harness adds `board/prof.c`
(`#include "prof.h"`: `prof_begin()` / `prof_end()`, empty calls natively) and on Cortex-M `board/startup.c` and
the linker script `board/an386.ld`: vector table, .data/.bss set-up, FPU on, newlib semihosting (stdin/stdout are
QEMU's, fopen() opens files relative to `cwd`), C++ constructors, `exit(main())`. `count=True` needs a QEMU target
and the QEMU 7.2 plugin header (`qemu_7.2_plugin_api/` under the TFLM root, or $HAR_QEMU_PLUGIN_API); the plugin
is compiled once into the cache. The TFLM library (`tflm_lib.py`) is built once per tree, flags and compiler into
~/.cache/har/firmware/ ($HAR_FIRMWARE_CACHE; $HAR_FIRMWARE_JOBS parallel compilers), so a warm build compiles
only your files.

On top: `tflm_probe.py` runs any int8 .tflite one Invoke() at a time (outputs, instructions, arena on the
target); `har_bundle.py` builds the har MCU bundle unchanged; `verify.py` and `stage.py` are `har deploy
--verify`.
"""
