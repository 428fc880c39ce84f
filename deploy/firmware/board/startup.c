/* har firmware harness: start-up for a bare-metal Cortex-M under QEMU (mps2-an386 / mps2-an500).
 * Vector table at 0x0, copy .data, zero .bss, enable the FPU, open newlib's semihosting handles, run the C/C++
 * constructors, then exit(main()): the exit code reaches the host as QEMU's exit status (docs/firmware.md). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);

#define HAR_FAULT_EXIT 99  /* exit status of any fault: reported by the runner as a firmware fault */

void *__dso_handle = 0;  /* -nostartfiles drops crtbegin, which defines it for C++ static destructors */
void _init(void) {}      /* called by __libc_init_array; nothing to do without crti/crtn */
void _fini(void) {}

void Reset_Handler(void);

static void Fault_Handler(void) { exit(HAR_FAULT_EXIT); }

__attribute__((section(".isr_vector"), used)) static void (*const vector_table[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};

void Reset_Handler(void) {
  for (uint32_t *src = &_sidata, *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  /* CPACR: full access to coprocessors 10 and 11 (the FPU); without it the first VFP instruction faults */
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
  __asm volatile("dsb\n\tisb" ::: "memory");
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
}
