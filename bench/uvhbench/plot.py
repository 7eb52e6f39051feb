"""The gnuplot bar charts of docs/benchmarks.png (or .svg)."""
import os
import re
import shutil

from .common import log
from .processes import make_tempdir, run_simple
from .report import WORKLOAD_LABEL


def gnuplot_terminal():
    rc, out = run_simple(["gnuplot", "-e", "set terminal"], timeout=10)
    names = set(re.findall(r"^\s*(\S+)\s", out, re.M))
    if "pngcairo" in names:
        return "pngcairo", "png"
    if "png" in names:
        return "png", "png"
    return "svg", "svg"


def make_plot(ctx, agg, out_base):
    """Write out_base.png (or .svg); return the file name or None."""
    if not shutil.which("gnuplot"):
        ctx.notes.append("gnuplot not found: no plot")
        return None
    panels = []
    for title, workloads, key, ylabel in (
            ("Small-file requests/s (higher is better)", ["small", "pipelined"], "rps", "requests/s"),
            ("Large-file throughput (higher is better)", ["file1m", "file1m-splice", "file100m"], "mbps", "MB/s")):
        ws = [w for w in workloads if any((w, n) in agg for n in ctx.servers)]
        if ws:
            panels.append((title, ws, key, ylabel))
    if not panels:
        return None
    servers = [n for n in ctx.servers if any((w, n) in agg for _, ws, _, _ in panels for w in ws)]
    term, ext = gnuplot_terminal()
    out_file = out_base + "." + ext
    d = make_tempdir("bench-plot-")
    colors = {"uvhttpd": "#1f77b4", "floor": "#7f7f7f", "nginx": "#2ca02c", "h2o": "#ff7f0e"}
    script = []
    size = "%d,%d" % (560 * len(panels), 440)
    if term == "pngcairo":
        script.append("set terminal pngcairo size %s font 'sans,10' noenhanced" % size)
    elif term == "png":
        script.append("set terminal png size %s noenhanced" % size)
    else:
        script.append("set terminal svg size %s noenhanced" % size)
    script.append("set output '%s'" % out_file)
    script.append("set datafile missing '-'")
    script.append("set style data histograms")
    script.append("set style histogram clustered gap 1")
    script.append("set style fill solid 0.9 border -1")
    script.append("set boxwidth 0.9")
    script.append("set grid ytics")
    script.append("set key below horizontal")
    script.append("set yrange [0:*]")
    script.append("set offsets 0, 0, graph 0.12, 0")
    script.append("set multiplot layout 1,%d title '%s (medians of %d round(s)%s)'"
                  % (len(panels), " vs ".join(servers), ctx.args.rounds,
                     ", quick run" if ctx.args.quick else ""))
    nserv = len(servers)
    for i, (title, ws, key, ylabel) in enumerate(panels):
        dat = os.path.join(d, "panel%d.dat" % i)
        with open(dat, "w") as f:
            f.write("# workload " + " ".join(servers) + "\n")
            for w in ws:
                vals = []
                for n in servers:
                    a = agg.get((w, n))
                    v = a[key] if a else None
                    vals.append("-" if v is None else "%.3f" % v)
                f.write('"%s" %s\n' % (WORKLOAD_LABEL[w], " ".join(vals)))
        script.append("set xrange [-0.6:%f]" % (len(ws) - 0.4))
        script.append("set title '%s'" % title)
        script.append("set ylabel '%s'" % ylabel)
        plots = []
        for j, n in enumerate(servers):
            col = j + 2
            plots.append("'%s' using %d:xtic(1) title '%s' lc rgb '%s'" % (dat, col, n, colors.get(n, "#777777")))
        for j, n in enumerate(servers):
            col = j + 2
            # bar centres in a clustered histogram with gap 1: row + (j - (n-1)/2) / (n + 1)
            xoff = (j - (nserv - 1) / 2.0) / (nserv + 1)
            plots.append("'%s' using ($0+%.4f):%d:(sprintf('%%.0f', column(%d))) with labels "
                         "offset 0,0.7 font ',8' notitle" % (dat, xoff, col, col))
        script.append("plot " + ", \\\n     ".join(plots))
    script.append("unset multiplot")
    gp = os.path.join(d, "plot.gp")
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    rc, out = run_simple(["gnuplot", gp], timeout=60)
    if rc != 0 or not os.path.exists(out_file):
        log("gnuplot failed (%d): %s" % (rc, out.strip()[-800:]))
        ctx.notes.append("gnuplot failed; no plot")
        return None
    # remove a stale plot in the other format
    for other in ("png", "svg"):
        stale = out_base + "." + other
        if other != ext and os.path.exists(stale):
            os.remove(stale)
    return os.path.basename(out_file)
