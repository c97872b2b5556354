"""onnxviz's own fuzz harness: mutated ONNX files, images, archives and run directories through
every command, each run classified (ok, clear error, generic exception line, internal error,
traceback, crash, hang). ``scripts/fuzz.py`` is the command line; tests/test_fuzz.py runs a
fixed-seed smoke.

    from onnxviz.fuzz import runner
    results = runner.run(seed=0, count=100, work=Path("/tmp/fuzz"))
    runner.summary(results)["outcomes"]
"""
