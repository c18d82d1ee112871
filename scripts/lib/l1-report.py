#!/usr/bin/env python3
"""l1-report.py HARNESS LOG_DIR CONSOLE_LOG...: turns what the L1 machine of a KVM harness
(HARNESS: kvm-amd or kvm-arm64, the prefix of every line printed) printed into a verdict.
There is one console log per boot of L1: when an L1 stopped before its last step (froze or
reset itself), the harness ran the rest in a fresh one.

Writes one log per step (the lines between "@@@ BEGIN name" and "@@@ END name status
seconds") into LOG_DIR, compares what the Debian kernel reported about its machine under
axvm and under QEMU (the reference), judges the kernel's errors against the reference's,
prints the boot times side by side, the tail of each failed step's log, and a last line
"HARNESS: N passed, M failed". Exits 1 when a step failed, a comparison differs, axvm's
kernel printed an error QEMU's did not, or L1 did not finish.
"""
import os
import re
import sys

# Facts the guest must report identically under axvm and QEMU (same kernel, CPUs, RAM).
COMPARED_FACTS = ("cpus", "clocksource", "cpu_model")
# The harness's name, the first argument: the prefix of every line printed.
HARNESS = "kvm-amd"


def split_steps(consoles, log_dir):
    """Per-step logs and results: {name: (status, seconds, lines)}, in run order, the last
    boot's result for a step that ran twice; whether the last boot finished; and, for each
    boot that stopped early, the step it stopped in."""
    steps, stops, finished = {}, [], False
    for console in consoles:
        current, lines, finished = None, [], False
        for raw in open(console, errors="replace"):
            line = raw.replace("\r", "").rstrip("\n")
            begin = re.match(r"^@@@ BEGIN (\S+)$", line)
            end = re.match(r"^@@@ END (\S+) (\d+) ([\d.]+)$", line)
            if begin:
                current, lines = begin.group(1), []
            elif end and current == end.group(1):
                steps[current] = (int(end.group(2)), float(end.group(3)), lines)
                name = current.replace("/", "_") + ".log"
                with open(os.path.join(log_dir, name), "w") as out:
                    out.write("\n".join(lines) + "\n")
                current = None
            elif line == "@@@ DONE":
                finished = True
            elif current:
                lines.append(line)
        if not finished:
            stops.append((console, current))
    return steps, finished, stops


def facts(lines):
    found = {}
    for line in lines:
        match = re.match(r"^linux-guest: fact (\w+)=(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def dmesg_errors(lines):
    """The kernel error lines a guest reported, with numbers that vary between boots (hex
    addresses, times) blanked so that the same message compares equal."""
    found = set()
    for line in lines:
        match = re.match(r"^linux-guest: dmesg-error (.*)$", line)
        if match:
            found.add(re.sub(r"0x[0-9a-f]+|\b[0-9a-f]{8,}\b", "#", match.group(1).strip()))
    return found


def judge_dmesg(steps):
    """Failure messages for kernel errors under axvm that the reference does not print.

    The same kernel booted by QEMU in the same L1 machine shows what that machine's
    emulated CPU makes any kernel say (QEMU 7.2's TCG, for example, describes XSAVE state
    it does not implement); anything more comes from axvm's platform."""
    reference = set()
    for name, (_, _, lines) in steps.items():
        if name.startswith(("linux/qemu", "boot/qemu")):
            reference |= dmesg_errors(lines)
    if reference:
        print(f"{HARNESS}: kernel errors under QEMU too (the L1 machine's, not axvm's): "
              + "; ".join(sorted(reference)))
    problems = []
    for name, (_, _, lines) in steps.items():
        if not name.startswith(("linux/axvm", "boot/axvm")):
            continue
        for error in sorted(dmesg_errors(lines) - reference):
            problems.append(f"{name}: the kernel says `{error}`, which it does not under QEMU")
    return problems


def comparisons(steps):
    """(axvm step, reference step) pairs: each linux/axvm-smpN-END step and the step
    linux/qemu-MACHINE-smpN-END that booted the same kernel the same way under QEMU."""
    pairs = []
    for ours in steps:
        match = re.match(r"^linux/axvm-(smp\d+-\w+)$", ours)
        if not match:
            continue
        for reference in steps:
            if re.match(r"^linux/qemu-[a-z]+-" + re.escape(match.group(1)) + "$", reference):
                pairs.append((ours, reference))
    return pairs


def compare(steps):
    """Failure messages for facts that differ between axvm and the reference."""
    problems = []
    for ours, reference in comparisons(steps):
        a, b = facts(steps[ours][2]), facts(steps[reference][2])
        if not a.get("cpus"):
            # The step failed before the guest's /init: its own failure says so.
            print(f"{HARNESS}: {ours} vs {reference}: not compared (no guest report)")
            continue
        differences = [f"{name}: {a.get(name)!r} under axvm, {b.get(name)!r} under QEMU"
                       for name in COMPARED_FACTS if a.get(name) != b.get(name)]
        print(f"{HARNESS}: {ours} vs {reference}: " + ("same " + ", ".join(COMPARED_FACTS)
                                                      if not differences else "DIFFERENT"))
        problems += [f"{ours}: axvm and QEMU disagree on {difference}"
                     for difference in differences]
    return problems


def boot_table(steps):
    rows = [(name, facts(lines).get("uptime_at_init", "?"), seconds, status)
            for name, (status, seconds, lines) in steps.items()
            if name.startswith(("linux/", "boot/"))]
    if rows:
        print(f"{HARNESS}: Linux boots (guest uptime at /init; wall time from VMM start to stop):")
        for name, at_init, seconds, status in rows:
            verdict = "passed" if status == 0 else "FAILED"
            print(f"  {name:32} /init at {at_init:>6} s   {seconds:6.1f} s   {verdict}")


def virtio_table(steps):
    """The virtio steps' verdicts (virtio-run.sh's "virtio: VMM TEST: ..." lines), QEMU's
    beside axvm's."""
    verdicts = [line for name, (_, _, lines) in steps.items()
                if name.startswith(("virtio/", "virtio-bench/"))
                for line in lines if line.startswith("virtio: ")]
    if verdicts:
        print(f"{HARNESS}: virtio devices (QEMU -M microvm,acpi=on the reference, then axvm):")
        for line in verdicts:
            print("  " + line[len("virtio: "):])


def bench_figure(metric, rest):
    """The figure of one vbench line: MB/s, with IOPS for 4 KiB random reads, or the
    average ping time."""
    if metric == "net-ping-rtt":
        match = re.search(r"= [\d.]+/([\d.]+)/[\d.]+ (\S+)", rest)
        return f"{match.group(1)} {match.group(2)} avg" if match else rest
    match = re.match(r"([\d.]+) MB/s", rest)
    if not match:
        return rest
    iops = re.search(r"([\d.]+) IOPS", rest)
    if metric.startswith("blk-rand") and iops:
        return f"{iops.group(1)} IOPS ({match.group(1)} MB/s)"
    return f"{match.group(1)} MB/s"


def virtio_bench_table(steps):
    """The virtio-bench figures (vbench's "vbench: METRIC VALUE ..." lines, in the guest),
    one row per measure, one column per VMM."""
    figures, vmms = {}, []
    for name, (_, _, lines) in steps.items():
        step = re.match(r"^virtio-bench/(.+)-bench-(?:blk|net)(?:-r(\d+))?$", name)
        if not step:
            continue
        vmm = step.group(1) + (f" r{step.group(2)}" if step.group(2) else "")
        if vmm not in vmms:
            vmms.append(vmm)
        for line in lines:
            found = re.search(r"vbench: (\S+) (.*)$", line)
            if found:
                metric, rest = found.groups()
                figures.setdefault(metric, {})[vmm] = bench_figure(metric, rest)
    if not figures:
        return
    print(f"{HARNESS}: virtio performance, inside the guest (vbench; one VM, 1 vCPU, 256 MiB):")
    print("  " + f"{'measure':18}" + "".join(f"{vmm:>24}" for vmm in vmms))
    for metric, by_vmm in figures.items():
        print("  " + f"{metric:18}" + "".join(f"{by_vmm.get(vmm, '-'):>24}" for vmm in vmms))


def main():
    global HARNESS
    HARNESS, log_dir, consoles = sys.argv[1], sys.argv[2], sys.argv[3:]
    steps, finished, stops = split_steps(consoles, log_dir)
    for console, step in stops:
        print(f"{HARNESS}: L1 stopped during {step or 'its start'} ({console}: it froze or reset "
              f"itself, a fault of the emulated machine or its kernel; QEMU's qemu.N.log "
              f"beside it has the CPU resets); the steps it did not finish ran again in a "
              f"fresh L1")
    boot_table(steps)
    virtio_table(steps)
    virtio_bench_table(steps)
    for name, (_, _, lines) in steps.items():
        for line in lines:
            if "RETRIED" in line:
                print(f"{HARNESS}: note: {line}")
    problems = compare(steps) + judge_dmesg(steps)
    failed = [name for name, (status, _, _) in steps.items() if status != 0]
    for name in failed:
        status, _, lines = steps[name]
        print(f"----- {name} failed (status {status}); the end of "
              f"{os.path.join(log_dir, name.replace('/', '_') + '.log')}:")
        print("\n".join(lines[-60:]))
    for problem in problems:
        print(f"{HARNESS}: FAILED: {problem}")
    if not finished:
        print(f"{HARNESS}: L1 did not finish its steps in four boots; the end of the last "
              "console:")
        print("".join(open(consoles[-1], errors="replace").readlines()[-40:]).replace("\r", ""))
    passed = len(steps) - len(failed)
    print(f"{HARNESS}: {passed} passed, {len(failed) + len(problems) + (not finished)} failed")
    return 1 if failed or problems or not finished else 0


if __name__ == "__main__":
    sys.exit(main())
