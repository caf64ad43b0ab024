"""`giltrace report DIR` on a small traced bench run."""

from ..conftest import run_python


def test_report_of_a_traced_bench_directory(native, tmp_path):
    out = tmp_path / "bench"
    res = run_python(
        [
            "-m",
            "giltrace",
            "bench",
            "--workloads",
            "cpu,latency-sync",
            "--cores",
            "1",
            "--n",
            "2",
            "--competitors",
            "1",
            "--duration",
            "0.3",
            "--repeat",
            "1",
            "--load",
            "300000",
            "--trace",
            "-o",
            str(out),
        ],
        cwd=str(tmp_path),
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rep = run_python(["-m", "giltrace", "report", str(out)], cwd=str(tmp_path))
    assert rep.returncode == 0, rep.stderr
    page = (out / "report.html").read_text()
    assert "<pre>" in page and "serial" in page and "thread" in page and "procs" in page
    # a timeline and a wait CDF for the cpu thread cell and for the latency thread cell
    assert page.count("data:image/png;base64,") == 4
    assert "N=2: serial" in page and "beside 1 CPU thread" in page
    pngs = list((tmp_path / "bench" / "report-files").glob("*.png"))
    assert len(pngs) == 4


def test_report_of_a_directory_that_is_not_a_bench_output(tmp_path):
    res = run_python(["-m", "giltrace", "report", str(tmp_path)], cwd=str(tmp_path))
    assert res.returncode == 2 and "not a giltrace bench output directory" in res.stderr
