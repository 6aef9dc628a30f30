"""Params from click, typer, Hydra, fire, jsonargparse and config files on the command
line: real libraries, real scripts under `runbase run` and `runbase.init()`."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import runbase_cmd, write
from runbase.capture.configfiles import candidates, read_config

PY = sys.executable


def record(project: Path) -> dict:
    return json.loads(runbase_cmd("show", "--json", cwd=project, check=True).stdout)


def got(stdout: str) -> tuple:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("GOT "))
    return ast.literal_eval(line[4:])


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = runbase_cmd("run", *args, cwd=project, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "runbase: warning" not in proc.stderr, proc.stderr
    return proc


def sources(rec: dict) -> set[str]:
    return set(rec["param_sources"].values())


CLICK = """
    import click
    {init}

    @click.group()
    @click.option("--seed", type=int, default=1)
    def cli(seed):
        pass

    @cli.command()
    @click.option("--lr", type=float, default=0.1)
    @click.option("--epochs", type=int, default=3)
    @click.option("--augment/--no-augment", default=False)
    @click.option("--layers", type=int, multiple=True, default=[64])
    @click.option("--api-token", default="")
    @click.argument("data", type=click.Path())
    def train(lr, epochs, augment, layers, api_token, data):
        print("GOT", (lr, epochs, augment, layers, data))

    cli()
"""


def test_click_group_and_command_params_with_overrides(project: Path) -> None:
    write(project, "train.py", CLICK.format(init=""))
    proc = run(
        project,
        "-p", "lr=0.3",          # on the command line: rewritten there
        "-p", "epochs=5",        # a default: set in the parsed params
        "-p", "augment=true",
        "--", PY, "train.py", "--seed", "7", "train", "--lr", "0.2",
        "--api-token", "s3cr3t-value", "data.csv",
    )  # fmt: skip
    assert got(proc.stdout) == (0.3, 5, True, (64,), "data.csv")
    rec = record(project)
    assert rec["params"] == {
        "seed": 7,
        "lr": 0.3,
        "epochs": 5,
        "augment": True,
        "layers": [64],
        "api_token": "***",
        "data": "data.csv",
    }
    assert sources(rec) == {"click"}  # argv guesses dropped, as with argparse


def test_click_override_its_type_rejects_warns_and_keeps_the_parsed_value(
    project: Path,
) -> None:
    write(project, "train.py", CLICK.format(init=""))
    proc = runbase_cmd(
        "run", "-p", "epochs=many", "--", PY, "train.py", "train", "d.csv", cwd=project
    )
    assert proc.returncode == 0, proc.stderr
    assert got(proc.stdout)[1] == 3
    assert "epochs=many" in proc.stderr and "runbase: warning" in proc.stderr
    assert record(project)["params"]["epochs"] == 3


def test_click_in_api_mode(project: Path) -> None:
    write(project, "train.py", CLICK.format(init="import runbase; runbase.init(name='c')"))
    proc = subprocess.run(
        [PY, "train.py", "train", "--epochs", "4", "d.csv"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert rec["mode"] == "api"
    assert rec["params"]["epochs"] == 4 and rec["params"]["lr"] == 0.1
    assert rec["param_sources"]["epochs"] == "click"


def test_no_integrations_leaves_click_alone(project: Path) -> None:
    write(project, "train.py", CLICK.format(init=""))
    run(project, "--no-integrations", "--", PY, "train.py", "train", "--lr", "0.2", "d.csv")
    rec = record(project)
    assert rec["params"] == {"lr": 0.2} and sources(rec) == {"argv"}


def test_typer_params_with_enum_and_overrides(project: Path) -> None:
    write(
        project,
        "train.py",
        """
        import enum
        import typer

        class Opt(str, enum.Enum):
            sgd = "sgd"
            adam = "adam"

        def main(lr: float = 0.1, epochs: int = 3, opt: Opt = Opt.sgd, fast: bool = False):
            print("GOT", (lr, epochs, opt.value, fast))

        typer.run(main)
        """,
    )
    proc = run(project, "-p", "opt=adam", "-p", "fast=true", "--", PY, "train.py", "--lr", "0.2")
    assert got(proc.stdout) == (0.2, 3, "adam", True)
    rec = record(project)
    assert rec["params"] == {"lr": 0.2, "epochs": 3, "opt": "adam", "fast": True}
    assert sources(rec) == {"typer"}


def test_hydra_composed_config_with_overrides(project: Path) -> None:
    write(
        project,
        "conf/config.yaml",
        """
        defaults:
          - optim: sgd
          - _self_
        model:
          lr: 0.1
          layers: [64, 32]
        db:
          name: main
          port: 5432
        seed: 1
        tag: ${db.name}_${seed}
        """,
    )
    write(project, "conf/optim/sgd.yaml", "name: sgd\nmomentum: 0.9\n")
    write(project, "conf/optim/adam.yaml", "name: adam\nbeta: 0.99\n")
    write(
        project,
        "app.py",
        """
        import argparse
        import hydra

        @hydra.main(version_base=None, config_path="conf", config_name="config")
        def main(cfg):
            # an argparse parse inside the task is the program's own: still captured
            p = argparse.ArgumentParser()
            p.add_argument("--extra", type=int, default=1)
            p.parse_args([])
            print("GOT", (cfg.model.lr, cfg.db.port, cfg.optim.name, cfg.tag))

        main()
        """,
    )
    proc = run(
        project,
        "-p", "db.port=1234",   # not on the command line: set in the composed config
        "-p", "seed=3",
        "--", PY, "app.py", "model.lr=0.5", "optim=adam",
    )  # fmt: skip
    assert got(proc.stdout) == (0.5, 1234, "adam", "main_3")
    rec = record(project)
    assert rec["params"] == {
        "model.lr": 0.5,
        "model.layers": [64, 32],
        "db.name": "main",
        "db.port": 1234,
        "seed": 3,
        "tag": "main_3",
        "optim.name": "adam",
        "optim.beta": 0.99,
        "extra": 1,
    }
    # Hydra's own command line (its overrides, --cfg, -m, ...) is not recorded
    assert set(rec["param_sources"].items()) - {("extra", "argparse")} == {
        (k, "hydra") for k in rec["params"] if k != "extra"
    }
    inputs = {i["path"] for i in rec["inputs"]}
    assert {"conf/config.yaml", "conf/optim/adam.yaml"} <= inputs


def test_hydra_compose_api(project: Path) -> None:
    write(project, "conf/config.yaml", "model:\n  lr: 0.1\n  depth: 3\n")
    write(
        project,
        "nb.py",
        """
        import runbase
        from hydra import compose, initialize
        runbase.init(name="compose")
        with initialize(version_base=None, config_path="conf"):
            cfg = compose(config_name="config", overrides=["model.depth=5"])
        print("GOT", (cfg.model.lr, cfg.model.depth))
        """,
    )
    proc = subprocess.run([PY, "nb.py"], cwd=project, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert got(proc.stdout) == (0.1, 5)
    rec = record(project)
    assert rec["params"] == {"model.lr": 0.1, "model.depth": 5}
    assert sources(rec) == {"hydra"}


HYDRA_MULTIRUN = """
    import hydra
    import runbase
    {outside}

    @hydra.main(version_base=None, config_path="conf", config_name="config")
    def main(cfg):
        {inside}
        runbase.log(loss=cfg.optim.lr * cfg.seed)
        print("GOT", (cfg.optim.name, cfg.optim.lr, cfg.seed))
        if cfg.optim.name == "adam" and cfg.seed == 3:
            raise RuntimeError("no convergence")

    main()
"""


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_hydra_multirun_with_init_makes_one_run_per_job(project: Path, where: str) -> None:
    """``runbase.init()`` before ``@hydra.main`` runs, or inside the task function (the
    run, and its hooks, then start during the first job: that job is a job run too)."""
    write(project, "conf/config.yaml", "defaults:\n  - optim: sgd\n  - _self_\nseed: 1\n")
    write(project, "conf/optim/sgd.yaml", "name: sgd\nlr: 0.1\nmomentum: 0.9\n")
    write(project, "conf/optim/adam.yaml", "name: adam\nlr: 0.01\nbeta: 0.99\n")
    init = "runbase.init(name='hy')"
    app = HYDRA_MULTIRUN.format(
        outside=init if where == "outside" else "", inside=init if where == "inside" else ""
    )
    write(project, "app.py", app)
    args = ["-m", "optim=sgd,adam", "seed=2,3"]
    proc = subprocess.run(
        [PY, "app.py", *args], cwd=project, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 1, proc.stderr  # Hydra fails the multirun: a job failed
    assert "runbase: warning" not in proc.stderr, proc.stderr
    listed = json.loads(runbase_cmd("ls", "--json", cwd=project, check=True).stdout)
    recs = [record_of(project, r["id"]) for r in listed]
    (parent,) = [r for r in recs if r["mode"] == "api"]
    jobs = sorted((r for r in recs if r["mode"] == "job"), key=lambda r: r["tags"]["sweep_index"])
    # the process's run: no config (no job ran a merged one), nor Hydra's argv as params
    assert parent["params"] == {} and parent["name"] == "hy"
    assert parent["status"] == "failed" and "job #3 failed" in parent["error"]
    optims = {
        "sgd": {"optim.name": "sgd", "optim.lr": 0.1, "optim.momentum": 0.9},
        "adam": {"optim.name": "adam", "optim.lr": 0.01, "optim.beta": 0.99},
    }
    expected = [(o, seed) for o in ("sgd", "adam") for seed in (2, 3)]
    assert [got(ln) for ln in proc.stdout.splitlines() if ln.startswith("GOT ")] == [
        (o, optims[o]["optim.lr"], seed) for o, seed in expected
    ]
    assert len(jobs) == 4
    for i, (rec, (optim, seed)) in enumerate(zip(jobs, expected, strict=True)):
        assert rec["params"] == {**optims[optim], "seed": seed}
        assert set(rec["param_sources"].values()) == {"hydra"}
        assert rec["metrics"]["loss"]["last"] == optims[optim]["optim.lr"] * seed
        assert rec["parent_id"] == parent["id"]
        assert rec["sweep_id"] == parent["tags"]["multirun"]
        assert rec["tags"]["sweep_index"] == str(i)
        assert rec["status"] == ("failed" if i == 3 else "finished")
        assert (rec["error"] or "").strip().endswith("RuntimeError: no convergence") == (i == 3)
        assert rec["command"] == [PY, "app.py", f"optim={optim}", f"seed={seed}"]


def record_of(project: Path, ref: str) -> dict:
    return json.loads(runbase_cmd("show", ref, "--json", cwd=project, check=True).stdout)


def test_fire_params_with_overrides(project: Path) -> None:
    write(
        project,
        "train.py",
        """
        import fire

        class Trainer:
            def __init__(self, seed=0):
                self.seed = seed

            def fit(self, lr=0.1, epochs=3, name="mlp", *, wd=0.0):
                print("GOT", (self.seed, lr, epochs, name, wd))

        fire.Fire(Trainer)
        """,
    )
    proc = run(
        project, "-p", "epochs=7", "-p", "wd=0.01",
        "--", PY, "train.py", "--seed=2", "fit", "--lr", "0.2",
    )  # fmt: skip
    assert got(proc.stdout) == (2, 0.2, 7, "mlp", 0.01)
    rec = record(project)
    assert rec["params"] == {"seed": 2, "lr": 0.2, "epochs": 7, "name": "mlp", "wd": 0.01}
    assert sources(rec) == {"fire"}  # fire's own flags (--help, --trace...) are not params


def test_jsonargparse_with_config_file_and_overrides(project: Path) -> None:
    write(
        project,
        "train.py",
        """
        from jsonargparse import ActionConfigFile, ArgumentParser

        p = ArgumentParser()
        p.add_argument("--config", action=ActionConfigFile)
        p.add_argument("--lr", type=float, default=0.1)
        p.add_argument("--model.depth", type=int, default=2)
        p.add_argument("--model.name", type=str, default="mlp")
        cfg = p.parse_args()
        print("GOT", (cfg.lr, cfg.model.depth, cfg.model.name))
        """,
    )
    write(project, "cfg.yaml", "lr: 0.5\nmodel:\n  depth: 7\n")
    proc = run(
        project, "-p", "model.name=cnn",
        "--", PY, "train.py", "--config", "cfg.yaml", "--lr", "0.3",
    )  # fmt: skip
    assert got(proc.stdout) == (0.3, 7, "cnn")
    rec = record(project)
    assert rec["params"] == {
        "config": ["cfg.yaml"],
        "lr": 0.3,
        "model.depth": 7,
        "model.name": "cnn",
    }
    assert sources(rec) == {"jsonargparse"}  # not argparse: jsonargparse has its own parse
    assert "cfg.yaml" in {i["path"] for i in rec["inputs"]}


def test_config_files_on_the_command_line(project: Path) -> None:
    write(project, "cfg.yaml", "lr: 0.5\nmodel:\n  depth: 7\n  name: cnn\napi_key: abc123\n")
    write(project, "extra.toml", "[optim]\nname = 'adam'\nbetas = [0.9, 0.99]\n")
    write(project, "params.json", '{"batch": 16, "model": {"depth": 9}}')
    write(project, "results.json", '{"acc": 0.1}')  # an output the run replaces: not read
    write(
        project,
        "train.py",
        """
        import json, sys, tomllib, yaml
        cfg = yaml.safe_load(open(sys.argv[2]))
        cfg.update(tomllib.load(open(sys.argv[4], "rb")))
        cfg.update(json.load(open(sys.argv[5])))
        json.dump({"acc": 0.9}, open("results.json", "w"))
        print("GOT", (cfg["lr"],))
        """,
    )
    run(
        project, "--", PY, "train.py", "--config", "cfg.yaml", "-c", "extra.toml",
        "params.json", "--output", "results.json", "--lr", "0.2",
    )  # fmt: skip
    rec = record(project)
    assert rec["params"] == {
        "config": "cfg.yaml",  # argv guesses
        "output": "results.json",
        "lr": 0.2,  # the command line beats the config file
        "model.depth": 9,  # a later file beats an earlier one
        "model.name": "cnn",
        "api_key": "***",  # secret-looking names are redacted
        "optim.name": "adam",
        "optim.betas": [0.9, 0.99],
        "batch": 16,
    }
    assert rec["param_sources"]["model.name"] == "config"
    assert rec["param_sources"]["lr"] == "argv"
    inputs = {i["path"]: i["source"] for i in rec["inputs"]}
    assert {"cfg.yaml", "extra.toml", "params.json"} <= set(inputs), inputs
    assert "results.json" in {o["path"] for o in rec["outputs"]}


def test_config_file_params_under_argparse_and_in_api_mode(project: Path) -> None:
    write(project, "cfg.yaml", "lr: 0.5\nepochs: 4\nmodel:\n  depth: 7\n")
    write(
        project,
        "train.py",
        """
        import argparse, yaml
        import runbase
        runbase.init()
        p = argparse.ArgumentParser()
        p.add_argument("--config")
        p.add_argument("--lr", type=float, default=0.1)
        a = p.parse_args()
        cfg = yaml.safe_load(open(a.config))
        """,
    )
    proc = subprocess.run(
        [PY, "train.py", "--config", "cfg.yaml", "--lr", "0.3"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rec = record(project)
    assert rec["mode"] == "api"
    assert rec["params"] == {"config": "cfg.yaml", "lr": 0.3, "epochs": 4, "model.depth": 7}
    assert rec["param_sources"] == {
        "config": "argparse",
        "lr": "argparse",  # the parser beats the file
        "epochs": "config",
        "model.depth": "config",
    }
    assert "cfg.yaml" in {i["path"] for i in rec["inputs"]}


def test_which_arguments_may_be_config_files(tmp_path: Path) -> None:
    argv = ["python", "t.py", "--config", "a.yaml", "--out", "b.json", "c.toml", "--cfg=d.yml"]
    argv += ["-c", "e.json", "--model-config", "f.json", "--lr", "-1", "g.json", "--", "h.yaml"]
    assert candidates(argv) == ["a.yaml", "c.toml", "d.yml", "e.json", "f.json", "g.json", "h.yaml"]
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "bad.yaml").write_text("a: [unclosed")
    (tmp_path / "big.json").write_text(json.dumps({f"k{i}": i for i in range(1001)}))
    (tmp_path / "ok.yml").write_text("a:\n  b: 1\n  c: [1, 2]\nd: null\n")
    for name in ("list.json", "bad.yaml", "big.json", "missing.json"):
        assert read_config(str(tmp_path / name)) is None, name
    assert read_config(str(tmp_path / "ok.yml")) == {"a.b": 1, "a.c": [1, 2], "d": None}
