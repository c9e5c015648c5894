"""The per-video hybrid-chip report (:func:`deploy.hardware.report.report`, as
:func:`hybrid.ondevice.chip_report.estimate` fills it) as text."""
from __future__ import annotations

from deploy.units import scaled as _s


def render(rep: dict) -> str:
    """The text report: stages, per video, the neurocore steps, Tianjic's verdict."""
    n, pv = rep["neuro"], rep["per_video"]
    sims = ", ".join(f"{m} {k}" for m, k in rep["sequences_simulated"].items())
    h = rep["host"]
    out = [f"hybrid chip: {rep['videos_read']} video(s) read; SANA-FE simulated {sims} "
           f"sequence(s) drawn at random (seed {rep['seed']}); report took "
           f"{rep['report_s']:.1f} s",
           f"host: {h['cpu']}, {h['logical_cpus']} CPU(s), {h['threads_used']} thread(s) for "
           f"the dense partition; power: {h['power_source']}", "",
           f"{'stage':<9} {'time':>10} {'95% interval':>21} {'energy':>10}  source"]
    for s in rep["stages"]:
        lo, hi = s["interval"]["time_s"]
        out.append(f"{s['name']:<9} {_s(s['time_s'], 's'):>10} "
                   f"{'[' + _s(lo, 's') + ', ' + _s(hi, 's') + ']':>21} "
                   f"{_s(s['energy_j'], 'J'):>10}  {s['source']}")
    ht = h["timing"]["stages"]
    if "decode" in ht:
        out.append(f"  extract median {_s(ht['extract']['wall_s']['median'], 's')} wall, "
                   f"{_s(ht['extract']['cpu_s']['median'], 's')} CPU; a plain PyAV decode "
                   f"of the same files {_s(ht['decode']['wall_s']['median'], 's')} wall, "
                   f"{_s(ht['decode']['cpu_s']['median'], 's')} CPU "
                   f"({ht['extract']['vs_plain_decode']:.2f}x); cold first read "
                   f"{_s(ht['extract']['cold']['wall_s'], 's')} (not in the median)")
    est = rep["dense"].get("estimate")
    if est:
        out.append(f"  dense: measured {_s(rep['dense']['time_s'], 's')} a video at batch 1, "
                   f"{_s(rep['dense']['measurement']['per_video_pipelined_s'], 's')} at batch "
                   f"{rep['dense']['measurement']['batch']}; the calibrated roofline "
                   f"{_s(est['time_s'], 's')} ({est['ratio_to_measured']:.2f}x the measured)")
    iv, cal = pv["interval"], pv["calibration"]
    out += ["", f"per video: latency {_s(pv['latency_s'], 's')} [{_s(iv['latency_s'][0], 's')}"
            f", {_s(iv['latency_s'][1], 's')}], pipelined {pv['throughput_vps']:.3g} "
            f"videos/s, energy {_s(pv['energy_j'], 'J')} [{_s(iv['energy_j'][0], 'J')}, "
            f"{_s(iv['energy_j'][1], 'J')}] (every stage; the chip's: "
            f"{_s(pv['chip_energy_j'], 'J')})",
            f"SANA-FE calibration band (energy +-{rep['calibration']['energy']:.0%}, latency "
            f"+-{rep['calibration']['latency']:.0%} on the spiking stage): latency "
            f"[{_s(cal['latency_s'][0], 's')}, {_s(cal['latency_s'][1], 's')}], energy "
            f"[{_s(cal['energy_j'][0], 'J')}, {_s(cal['energy_j'][1], 'J')}]",
            f"the paper (its GPU measurement): {rep['paper']['energy_j']} J, "
            f"{rep['paper']['throughput_vps']} videos/s", "",
            f"neurocores: {n['simulator']}, {n['architecture']}; mapping: {n['mapping']}; "
            f"{n['placement']}"]
    ch = rep["chips"]
    traffic = ch["interchip"] or ch["reload"]
    out.append(f"  chips: {ch['count']} of {ch['preset']} ({ch['mode']}); "
               + (f"chip-to-chip: {traffic['messages_per_video']:,.0f} messages a video, "
                  f"{_s(traffic['time_s'], 's')}, {_s(traffic['energy_j'], 'J')} (estimated, "
                  "assumed per-hop figures: deploy/hardware/boards.py)" if ch["interchip"]
                  else f"reloads: {traffic['weight_state_bytes']:,} B of weights and state + "
                  f"{traffic['spilled_bytes']:,} B of spikes over {traffic['link']}, "
                  f"{_s(traffic['time_s'], 's')}, {_s(traffic['energy_j'], 'J')} (estimated)"))
    for m, b in n["branches"].items():
        ps = b["per_sequence"]
        out.append(f"  {m}: {b['cores']} cores (+{b['input_cores']} input), "
                   f"{b['steps_simulated']} steps a sequence: time "
                   f"{_s(ps['time_s']['mean'], 's')} [{_s(ps['time_s']['min'], 's')} .. "
                   f"{_s(ps['time_s']['max'], 's')}], energy "
                   f"{_s(ps['energy_j']['mean'], 'J')} [{_s(ps['energy_j']['min'], 'J')} .. "
                   f"{_s(ps['energy_j']['max'], 'J')}] (layer 1: "
                   f"{_s(b['layer1']['time_s'], 's')}, {_s(b['layer1']['energy_j'], 'J')} "
                   f"on {b['layer1']['cores']} cores, estimated)")
        for la in b["layers"]:
            sp, ms = la["spikes_per_step"], la["messages_per_step"]
            out.append(f"    {la['name']}: spikes/step {sum(sp) / len(sp):.0f}, "
                       f"messages/step {sum(ms) / len(ms):.0f} ({la['source']})")
    ps = n["per_step"]
    out.append("  per step (both branches): time " + " ".join(_s(t, "s") for t in ps["time_s"]))
    tj = rep["tianjic"]
    out += ["", f"Tianjic: {tj['cores_needed']:,} cores ({tj['snn_cores']:,} SNN-mode, "
            f"{tj['ann_cores']:,} ANN-mode) of {tj['cores_per_chip']} a chip, "
            f"{tj['chips_needed']} chip(s); fits one chip: "
            f"{'yes' if tj['fits_one_chip'] else 'no'}"]
    out += [f"  why not: {w}" for w in tj["why_not"]]
    return "\n".join(out)
