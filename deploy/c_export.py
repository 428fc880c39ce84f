"""A .tflite as a C array (alignas(16), const) with its header of deployment constants."""

from __future__ import annotations


def c_array(data: bytes, name: str, header: str) -> str:
    rows = [", ".join(f"0x{b:02x}" for b in data[i : i + 12]) for i in range(0, len(data), 12)]
    return (f'#include "{header}"\n\n'
            f"alignas(16) const unsigned char {name}[] = {{\n  " + ",\n  ".join(rows) + "\n};\n"
            f"const unsigned int {name}_len = {len(data)};\n")


def _floats(values) -> str:
    return "{" + ", ".join(f"{float(v):.9g}f" for v in values) + "}"


def model_header(name: str, constants: dict) -> str:
    """Header with the model array and the constants firmware needs to feed it (see `deployment_constants`)."""
    c = constants
    labels = ", ".join(f'"{label}"' for label in c["labels"])
    guard = name.upper() + "_H_"
    return "\n".join([
        f"#ifndef {guard}", f"#define {guard}", "",
        f"/* {name}: one streaming step of the L2MU (har). Input: one normalised 6-axis sample, int8;",
        " * output: this step's output spikes, int8. State lives in resource variables; reset per window. */",
        f"extern const unsigned char {name}[];", f"extern const unsigned int {name}_len;", "",
        f"#define HAR_NUM_CLASSES {len(c['labels'])}",
        f"#define HAR_NUM_CHANNELS 6",
        f"#define HAR_SAMPLE_RATE_HZ {c['fs_hz']:g}f",
        f"#define HAR_WINDOW_SAMPLES {c['window']}",
        f"#define HAR_HOP_SAMPLES {c['hop']}",
        f"#define HAR_INPUT_SCALE {c['input_scale']:.9g}f",
        f"#define HAR_INPUT_ZERO_POINT {c['input_zero_point']}",
        f"#define HAR_OUTPUT_SCALE {c['output_scale']:.9g}f",
        f"#define HAR_OUTPUT_ZERO_POINT {c['output_zero_point']}",
        "/* z = (x - mean) / std per channel, in the order acc_x, acc_y, acc_z (m/s^2), gyro_x, gyro_y, gyro_z (rad/s) */",
        f"static const float kHarNormMean[6] = {_floats(c['mean'])};",
        f"static const float kHarNormStd[6] = {_floats(c['std'])};",
        f"static const char* const kHarLabels[HAR_NUM_CLASSES] = {{{labels}}};",
        "", f"#endif  /* {guard} */", "",
    ])
