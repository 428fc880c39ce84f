// har firmware harness: runs the bundle's step model one Invoke() at a time, as har_inference.cc builds a lane
// (own MicroAllocator + MicroResourceVariables in a HAR_ARENA_BYTES arena), to compare raw int8 step outputs with
// the reference interpreter, count each Invoke()'s instructions (prof_begin/prof_end) and read the arena the
// target really uses. Input file har_steps.bin: "HARQ", uint32 windows, uint32 steps, uint32 channels, then
// windows x steps x channels int8 (already quantised). Output: "out <hex>" per step, then "arena_used <bytes>".
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "har_model_data.h"
#include "har_op_resolver.h"
#include "prof.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_resource_variable.h"
#include "tensorflow/lite/schema/schema_generated.h"

#if defined(__arm__)
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"

static void har_debug_log(const char* s) { fputs(s, stderr); }
#endif

namespace {

alignas(16) uint8_t g_arena[HAR_ARENA_BYTES];
alignas(tflite::MicroInterpreter) uint8_t g_storage[sizeof(tflite::MicroInterpreter)];
HarOpResolver g_resolver;

int fail(const char* what) {
  printf("error %s\n", what);
  return 2;
}

}  // namespace

int main(void) {
#if defined(__arm__)
  RegisterDebugLogCallback(har_debug_log);
#endif
  FILE* in = fopen("har_steps.bin", "rb");
  char magic[4];
  uint32_t windows = 0, steps = 0, channels = 0;
  if (in == nullptr || fread(magic, 1, 4, in) != 4 || memcmp(magic, "HARQ", 4) != 0 || fread(&windows, 4, 1, in) != 1 ||
      fread(&steps, 4, 1, in) != 1 || fread(&channels, 4, 1, in) != 1 || channels != HAR_CHANNELS) {
    return fail("har_steps.bin: missing or not a HARQ file");
  }
  const tflite::Model* model = tflite::GetModel(g_har_model);
  if (model->version() != TFLITE_SCHEMA_VERSION || har_register_ops(g_resolver) != kTfLiteOk) return fail("model");
  tflite::MicroAllocator* allocator = tflite::MicroAllocator::Create(g_arena, HAR_ARENA_BYTES);
  if (allocator == nullptr) return fail("allocator");
  tflite::MicroResourceVariables* variables =
      tflite::MicroResourceVariables::Create(allocator, HAR_NUM_RESOURCE_VARIABLES);
  if (variables == nullptr) return fail("resource variables");
  tflite::MicroInterpreter* interpreter =
      new (g_storage) tflite::MicroInterpreter(model, g_resolver, allocator, variables);
  if (interpreter->AllocateTensors() != kTfLiteOk) return fail("AllocateTensors");
  int8_t x[HAR_CHANNELS];
  for (uint32_t w = 0; w < windows; ++w) {
    interpreter->Reset();
    for (uint32_t t = 0; t < steps; ++t) {
      if (fread(x, 1, sizeof(x), in) != sizeof(x)) return fail("har_steps.bin truncated");
      memcpy(interpreter->input(0)->data.int8, x, sizeof(x));
      prof_begin();
      const TfLiteStatus status = interpreter->Invoke();
      prof_end();
      if (status != kTfLiteOk) return fail("Invoke");
      const int8_t* out = interpreter->output(0)->data.int8;
      printf("out ");
      for (int c = 0; c < HAR_NUM_CLASSES; ++c) printf("%02x", (unsigned)(uint8_t)out[c]);
      printf("\n");
    }
  }
  printf("arena_used %u\n", (unsigned)interpreter->arena_used_bytes());
  fclose(in);
  return 0;
}
