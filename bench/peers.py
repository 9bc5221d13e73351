#!/usr/bin/env python3
"""peers.py - clattn on the default device against what a user would run instead.

One run on one machine measures, for B = 1, H = 8, D = 64, f32 and N in --sizes,
causal and not:
  * clattn's flash, tiled and gemm variants (`clattn prof --json`, OpenCL
    profiling events, every point verified against the CPU reference);
  * PyTorch CPU attention (scaled_dot_product_attention where the installed
    torch has it, else matmul-softmax-matmul), torch threads = the machine's cores;
  * OpenBLAS SGEMM at the same FLOP count, the machine's practical f32 ceiling;
and prints the ratios flash / torch, flash / SGEMM rate and flash / gemm
variant. GFLOP/s count kept query-key pairs only (4 * D flops each), for every
contender, so causal rates are comparable with dense ones.

With --rounds R > 1, flash, PyTorch and SGEMM are measured R times, each
round visiting every point and measuring the three back to back, so a
slowdown of the machine hits all three of a round alike; the table gives each
one's median over the rounds and the median of the per-round ratios. tiled
and gemm are measured once.

It also records flash's device memory (the plan's own scratch, from
`clattn run --json`) at N = 1024 and N = --mem-n, and the time a warm-cache
`clattn run` process spends beyond its kernel.

Run through bench/run.sh, which installs the peers and builds first.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def clattn_prof(tool, sizes, causal, repeat, variants="flash,tiled,gemm"):
    cmd = [tool, "prof", "--variants", variants, "--sizes", ",".join(map(str, sizes)),
           "--batch", "1", "--heads", "8", "--dim", "64", "--repeat", str(repeat), "--min-time", "0",
           "--json", "-"]
    if causal:
        cmd.append("--causal")
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    out = sh(cmd).stdout
    recs = json.loads(out)
    return {(r["variant"], r["Nq"]): r for r in recs}


def torch_attention(sizes, causal, repeat, threads):
    import torch
    torch.set_num_threads(threads)
    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    res = {}
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        q, k, v = (torch.randn(1, 8, n, 64, generator=g) for _ in range(3))
        if sdpa is not None:
            def run():
                return sdpa(q, k, v, is_causal=causal)
        else:
            mask = torch.triu(torch.full((n, n), float("-inf")), 1) if causal else None

            def run():
                s = torch.matmul(q, k.transpose(-1, -2)) * (64 ** -0.5)
                if mask is not None:
                    s = s + mask
                return torch.matmul(torch.softmax(s, dim=-1), v)
        with torch.no_grad():
            run()
            run()
            ms = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                run()
                ms.append((time.perf_counter() - t0) * 1e3)
        kept = n * (n + 1) / 2 if causal else n * n
        med = statistics.median(ms)
        res[n] = {"ms_median": med, "gflops": 4 * 64 * 8 * kept / (med * 1e6),
                  "impl": "scaled_dot_product_attention" if sdpa else "matmul-softmax-matmul"}
    return res, torch.__version__


def sgemm(peer, flops, repeat):
    n = max(1, round((flops / 2) ** (1 / 3)))
    out = sh([peer, str(n), str(repeat)]).stdout
    return json.loads(out)


def run_json(tool, args):
    out = sh([tool, "run"] + args + ["--json"]).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clattn", default="build/clattn")
    ap.add_argument("--sgemm-peer", required=True)
    ap.add_argument("--sizes", default="1024,2048,4096")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure flash, torch and SGEMM point by point this many times (medians)")
    ap.add_argument("--mem-n", type=int, default=32768, help="largest N of the flash memory check")
    ap.add_argument("--json", help="write every measurement here")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    threads = os.cpu_count() or 1
    report = {"threads": threads, "sizes": sizes, "rows": []}

    def g(x):
        return x["gflops"] if x and x.get("verified", True) not in (False,) else float("nan")

    if a.rounds <= 1:
        for causal in (False, True):
            prof = clattn_prof(a.clattn, sizes, causal, a.repeat)
            tor, tver = torch_attention(sizes, causal, a.repeat, threads)
            report["torch"] = tver
            for n in sizes:
                kept = n * (n + 1) / 2 if causal else n * n
                report["rows"].append({"N": n, "causal": causal, "flash": prof.get(("flash", n)),
                                       "tiled": prof.get(("tiled", n)), "gemm": prof.get(("gemm", n)),
                                       "torch": tor[n], "sgemm": sgemm(a.sgemm_peer, 4 * 64 * 8 * kept, a.repeat)})
    else:
        others = {c: clattn_prof(a.clattn, sizes, c, a.repeat, "tiled,gemm") for c in (False, True)}
        rounds = {}
        for _ in range(a.rounds):
            for causal in (False, True):
                for n in sizes:
                    kept = n * (n + 1) / 2 if causal else n * n
                    fl = clattn_prof(a.clattn, [n], causal, a.repeat, "flash").get(("flash", n))
                    tor, tver = torch_attention([n], causal, a.repeat, threads)
                    report["torch"] = tver
                    sg = sgemm(a.sgemm_peer, 4 * 64 * 8 * kept, a.repeat)
                    rounds.setdefault((n, causal), []).append({"flash": fl, "torch": tor[n], "sgemm": sg})
        for causal in (False, True):
            for n in sizes:
                rs = rounds[(n, causal)]
                med = {k: statistics.median(g(x[k]) if k == "flash" else x[k]["gflops"] for x in rs)
                       for k in ("flash", "torch", "sgemm")}
                report["rows"].append({
                    "N": n, "causal": causal, "rounds": rs,
                    "flash": {"gflops": med["flash"], "verified": all(x["flash"] and x["flash"].get("verified")
                                                                      is not False for x in rs)},
                    "tiled": others[causal].get(("tiled", n)), "gemm": others[causal].get(("gemm", n)),
                    "torch": {"gflops": med["torch"], "impl": rs[0]["torch"]["impl"]},
                    "sgemm": {"gflops": med["sgemm"]},
                    "round_ratios": {
                        "flash_over_torch": statistics.median(g(x["flash"]) / x["torch"]["gflops"] for x in rs),
                        "flash_over_sgemm": statistics.median(g(x["flash"]) / x["sgemm"]["gflops"] for x in rs)}})

    how = f"ms = median of {a.repeat}" if a.rounds <= 1 else \
        f"medians of {a.rounds} interleaved rounds (each a median of {a.repeat}); torch and sgemm ratios: " \
        f"median of the per-round ratios"
    print(f"\nB=1 H=8 D=64 f32; torch {report['torch']} ({report['rows'][0]['torch']['impl']}), "
          f"{threads} threads; GFLOP/s over kept pairs; {how}")
    hdr = ("N", "causal", "flash", "tiled", "gemm", "torch", "sgemm", "flash/torch", "flash/sgemm", "flash/gemm")
    print("%6s %6s %8s %8s %8s %8s %8s %11s %11s %10s" % hdr)
    for r in report["rows"]:
        f, t, ge, to, sg = g(r["flash"]), g(r["tiled"]), g(r["gemm"]), r["torch"]["gflops"], r["sgemm"]["gflops"]
        rr = r.get("round_ratios", {"flash_over_torch": f / to, "flash_over_sgemm": f / sg})
        r["ratios"] = dict(rr, flash_over_gemm=f / ge)
        print("%6d %6s %8.2f %8.2f %8.2f %8.2f %8.2f %10.2fx %10.0f%% %9.2fx" %
              (r["N"], "yes" if r["causal"] else "no", f, t, ge, to, sg, rr["flash_over_torch"],
               100 * rr["flash_over_sgemm"], f / ge))

    # flash's device memory: the plan's scratch at N = 1024 and at --mem-n,
    # and this process's children's peak RSS (PoCL's device memory is host memory)
    with tempfile.TemporaryDirectory() as d:
        mem = []
        for n in (1024, a.mem_n):
            paths = []
            for i in range(3):
                p = os.path.join(d, f"{n}_{i}.npy")
                sh([a.clattn, "random", "--shape", f"1,8,{n},64", "--seed", str(i + 1), "--out", p])
                paths.append(p)
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            j = run_json(a.clattn, ["--q", paths[0], "--k", paths[1], "--v", paths[2], "--variant", "flash"])
            after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            mem.append({"N": n, "device_bytes": j.get("device_bytes"), "kernel_ms": j["kernel_ms"],
                        "peak_rss_mib": max(before, after) / 1024.0, "tensors_mib": 4 * 8 * n * 64 * 4 / 2**20})
            for p in paths:
                os.unlink(p)
        report["flash_memory"] = mem
        print("\nflash extra device memory (plan scratch):",
              ", ".join(f"N={m['N']}: {m['device_bytes']} bytes (kernel {m['kernel_ms']:.0f} ms, "
                        f"q+k+v+o {m['tensors_mib']:.0f} MiB)" for m in mem))

        # a warm-cache `clattn run` process: wall time beyond the kernel
        paths = []
        for i in range(3):
            p = os.path.join(d, f"w{i}.npy")
            sh([a.clattn, "random", "--shape", "1,8,1024,64", "--seed", str(i + 1), "--out", p])
            paths.append(p)
        argv = ["--q", paths[0], "--k", paths[1], "--v", paths[2], "--variant", "flash"]
        run_json(a.clattn, argv)  # warms the program cache
        over = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            j = run_json(a.clattn, argv)
            over.append((time.perf_counter() - t0) * 1e3 - j["kernel_ms"])
        report["run_overhead_ms"] = over
        print("warm-cache `clattn run` process, wall minus kernel time (ms): median %.1f (%s)" %
              (statistics.median(over), ", ".join("%.1f" % x for x in over)))

    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
