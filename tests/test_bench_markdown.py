"""`cryptoface bench inference --markdown FILE` writes its table, headed by its own command, into
the marked section of that command's model and executors (docs/benchmarks.md relies on it)."""

from __future__ import annotations

from typer.testing import CliRunner

from cryptoface.cli import app


def test_bench_inference_writes_its_section_with_one_row_per_executor(tmp_path, monkeypatch):
    doc = tmp_path / "bench.md"
    doc.write_text("before\n<!-- inference-small-serial-processes:begin -->\nold\n<!-- inference-small-serial-processes:end -->\nafter\n")
    args = ["bench", "inference", "--model", "small", "--backend", "simulator", "--executor", "serial,processes",
            "--json", str(tmp_path / "b.json"), "--markdown", str(doc)]
    monkeypatch.setattr("sys.argv", ["cryptoface", *args])  # the table's command line comes from argv
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    text = doc.read_text()
    section = text.split("<!-- inference-small-serial-processes:begin -->")[1].split("<!-- inference-small-serial-processes:end -->")[0]
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in section
    assert "Command: `cryptoface bench inference --model small" in section and "--executor serial,processes" in section
    rows = [line for line in section.splitlines() if line.startswith("| simulator |")]
    assert [r.split("|")[2].strip() for r in rows] == ["serial", "processes"]
    assert "worker peak GB" in section
