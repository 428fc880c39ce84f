"""Build targets of the firmware harness: the compilers, CPU flags, defines and QEMU machine of each core, and TFLM's
own compile flags (docs/firmware.md, "Flags")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """One core to build for. `tree` names the TFLM source tree it needs under the TFLM root (docs/firmware.md)."""

    name: str
    cc: str
    cxx: str
    tree: str                           # "tflm_ref" (reference kernels) or "tflm_cmsis_nn_cm4" (CMSIS-NN)
    cpu_flags: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    extra_warnings: tuple[str, ...] = ()
    qemu_machine: str | None = None     # None: runs natively on the build machine
    qemu_cpu: str | None = None

    @property
    def is_host(self) -> bool:
        return self.qemu_machine is None

    @property
    def cmsis_nn(self) -> bool:
        return self.tree == "tflm_cmsis_nn_cm4"

    def tool(self, name: str) -> str:
        """A binutils tool of this target's toolchain: "size", "nm", "ar"."""
        return name if self.is_host else f"arm-none-eabi-{name}"


# TFLM's warning set (its Makefile's CC_WARNINGS); application sources are compiled with -Werror on top.
TFLM_WARNINGS = ("-Wsign-compare", "-Wdouble-promotion", "-Wunused-variable", "-Wunused-function", "-Wswitch",
                 "-Wvla", "-Wall", "-Wextra", "-Wmissing-field-initializers", "-Wstrict-aliasing",
                 "-Wno-unused-parameter")
COMMON_FLAGS = ("-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections",
                "-fmessage-length=0")
COMMON_DEFINES = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DKERNELS_OPTIMIZED_FOR_SPEED")
CXX_FLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-Wnon-virtual-dtor")
C_FLAGS = ("-std=c17", "-Wimplicit-function-declaration")

_ARM_COMMON = ("-mthumb", "-mfloat-abi=hard", "-mlittle-endian", "-funsigned-char", "-fomit-frame-pointer")
# The kit ships one CMSIS device header (ARMCM4.h); only cortex_m_generic/micro_time.cc includes it, for DWT.
_ARM_DEFINES = ("-DCMSIS_NN", "-DTF_LITE_MCU_DEBUG_LOG", "-DARMCM4",
                '-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE="ARMCM4.h"', "-DARM_NN_ENABLE_F16=0",
                "-DARM_NN_ENABLE_F32=0")
_ARM_WARNINGS = ("-Wno-type-limits", "-Wno-unused-private-field")

HOST = Target(name="host", cc="gcc", cxx="g++", tree="tflm_ref", defines=("-DTF_LITE_USE_CTIME",))
CORTEX_M4 = Target(name="cortex-m4", cc="arm-none-eabi-gcc", cxx="arm-none-eabi-g++", tree="tflm_cmsis_nn_cm4",
                   cpu_flags=("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", *_ARM_COMMON),
                   defines=(*_ARM_DEFINES, "-DCPU_M4=1"), extra_warnings=_ARM_WARNINGS,
                   qemu_machine="mps2-an386", qemu_cpu="cortex-m4")
CORTEX_M7 = Target(name="cortex-m7", cc="arm-none-eabi-gcc", cxx="arm-none-eabi-g++", tree="tflm_cmsis_nn_cm4",
                   cpu_flags=("-mcpu=cortex-m7", "-mfpu=fpv5-d16", *_ARM_COMMON),
                   defines=(*_ARM_DEFINES, "-DCPU_M7=1"), extra_warnings=_ARM_WARNINGS,
                   qemu_machine="mps2-an500", qemu_cpu="cortex-m7")
TARGETS = {t.name: t for t in (HOST, CORTEX_M4, CORTEX_M7)}


def target_for_core(core: str) -> Target:
    """The emulated target of a device profile's `core` ("Arm Cortex-M4F", "Arm Cortex-M7")."""
    text = core.lower()
    for marker, target in (("cortex-m4", CORTEX_M4), ("cortex-m7", CORTEX_M7)):
        if marker in text:
            return target
    raise ValueError(f"no emulated target for core {core!r} (supported: Cortex-M4F, Cortex-M7)")
