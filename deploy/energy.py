"""Latency and energy per decision: measured where the model runs, otherwise estimated from op counts and the
device profile's constants. Every result says whether it is an estimate and on what basis."""

from __future__ import annotations

from deploy.profiles import DeviceProfile

# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm, 0.9 V: fp32 MAC 4.6 pJ, fp32 add (an AC) 0.9 pJ.
MAC_PJ = 4.6
AC_PJ = 0.9
SYNOP_CAVEAT = ("ignores memory and data movement; counting them, an SNN with T = 5 must stay below ~5.7 % spike "
                "rate to beat an equivalent quantised ANN (Yan et al., arXiv:2409.08290); on an MCU running dense "
                "int8 kernels, binary activations save nothing unless kernels skip zeros")


def step_cycles(profile: DeviceProfile, step_ops: dict) -> float:
    # cycles = MACs x c_mac + elementwise x c_elem + operators x c_op
    return (step_ops["macs"] * profile.cycles_per_mac + step_ops["elementwise"] * profile.cycles_per_elementwise
            + step_ops["ops"] * profile.overhead_cycles_per_op)


def estimate_latency(profile: DeviceProfile, step_ops: dict, steps_per_decision: int) -> dict:
    """Latency of one step (`per_sample`, one model invocation) and of one decision (`steps_per_decision`
    invocations: a decision integrates one window), in microseconds, from the profile's cycle constants."""
    per_sample = step_cycles(profile, step_ops) / profile.clock_mhz  # t = cycles / f
    return {
        "per_sample": per_sample,
        "per_decision": per_sample * steps_per_decision,
        "estimate": True,
        "basis": (f"{step_ops['macs']:,} int8 MACs x {profile.cycles_per_mac:g} + {step_ops['elementwise']:,} "
                  f"elementwise x {profile.cycles_per_elementwise:g} + {step_ops['ops']} ops x "
                  f"{profile.overhead_cycles_per_op:g} cycles per step at {profile.clock_mhz:g} MHz "
                  f"({profile.name} profile constants), x {steps_per_decision} steps per decision"),
    }


def latency_from_instructions(profile: DeviceProfile, measured: dict) -> dict:
    """Latency of one step and one decision from the instructions the firmware executed on the emulated core
    (`har deploy --verify`, medians) and the profile's cycles per instruction: an estimate, cycles are not
    measured."""
    cpi, f = profile.cycles_per_instruction, profile.clock_mhz
    step, decision = measured["instructions_per_step"]["median"], measured["instructions_per_decision"]["median"]
    return {
        "per_sample": step * cpi / f,  # t = instructions x CPI / f
        "per_decision": decision * cpi / f,
        "estimate": True,
        "basis": (f"measured median {step:,} instructions per step ({decision:,} per decision) on {measured['target']} "
                  f"(QEMU {measured['machine']}, {measured['windows']} held-out windows) x CPI {cpi:g} "
                  f"({profile.name} profile, an assumption) at {f:g} MHz"),
        "max_per_decision": measured["instructions_per_decision"]["max"] * cpi / f,
    }


def estimate_energy_per_decision(profile: DeviceProfile, latency_us_per_decision: float, measured: bool) -> dict:
    """E = t x P_active in microjoules. The power is the profile's figure, never measured here, so the energy is an
    estimate even when the latency was measured; `measured` says which latency went in."""
    value = latency_us_per_decision * profile.active_mw * 1e-3  # us x mW = nJ; / 1000 -> uJ
    latency = "measured" if measured else "estimated"
    return {
        "value": value,
        "estimate": True,
        "basis": f"{latency} latency {latency_us_per_decision:.4g} us x {profile.name} active power "
                 f"{profile.active_mw:g} mW (profile {profile.path})",
    }


def snn_synop_energy(effective_macs: float, effective_acs: float) -> dict:
    """NeuroBench-style synaptic-operation energy of one window: E = MACs x 4.6 pJ + ACs x 0.9 pJ, in microjoules."""
    value = (effective_macs * MAC_PJ + effective_acs * AC_PJ) * 1e-6  # pJ -> uJ
    return {
        "value": value,
        "estimate": True,
        "basis": f"{effective_macs:,.0f} effective MACs x {MAC_PJ} pJ + {effective_acs:,.0f} effective ACs x "
                 f"{AC_PJ} pJ (45 nm, Horowitz ISSCC 2014)",
        "caveat": SYNOP_CAVEAT,
    }
