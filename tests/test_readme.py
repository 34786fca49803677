"""The README stays true: its examples are run here (the rest by scripts/test.sh and CI)."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
DRIFTLINE = os.path.join(os.path.dirname(sys.executable), "driftline")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("command", ["driftline drift", "driftline estimate"])
def test_the_offline_examples_print_what_the_readme_shows(command):
    [console] = [b for b in blocks("console") if command in b]
    command, _, expected = console.partition("\n")
    args = command.removeprefix("$ .venv/bin/driftline ").split()
    result = subprocess.run([DRIFTLINE, *args], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_the_curl_example_is_accepted(live_server):
    [curl] = [b for b in blocks("sh") if b.startswith("curl -s localhost:8000/v1/events")]
    body = curl.split("<<'EOF'\n", 1)[1].rsplit("EOF", 1)[0].encode()
    server = live_server()
    response = server.client.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 202 and response.json() == {"accepted": 3, "rejected": 0, "errors": []}


def test_the_quick_start_commands_are_the_ones_tested():
    sh = blocks("sh")
    assert ("python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e . && .venv/bin/driftline serve"
            in sh[0])
    assert sh[1].strip() == "scripts/test.sh"  # .ci/run runs exactly this
    assert "scripts/test.sh" in (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()


def test_the_demo_shows_drift_and_the_signed_retraining_request():
    result = subprocess.run([DRIFTLINE, "demo", "--seconds", "20", "--port", "0", "--drift-after", "4",
                             "--rate", "300"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "DRIFT INJECTED" in result.stdout and "YES" in result.stdout
    assert "retraining request received (signature verified): model=fraud" in result.stdout
    # The accuracy drop starts its own request (a data drift trigger's cooldown used to swallow it).
    assert "model=fraud reason=performance_drop" in result.stdout, result.stdout[-3000:]
    assert "model=eta reason=data_drift" in result.stdout, result.stdout[-3000:]
    assert "columns: window = " in result.stdout and "drift share = " in result.stdout


def test_every_install_uses_the_tested_pins_and_they_satisfy_pyproject():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    root = Path(__file__).resolve().parents[1]
    assert "-c constraints.txt" in blocks("sh")[0]
    assert '"${pins[@]}" -e' in (root / "scripts" / "test.sh").read_text()
    assert "pins=(-c constraints.txt)" in (root / "scripts" / "test.sh").read_text()
    assert "pip install -c constraints.txt -r" in (root / "Dockerfile").read_text()
    pins = {}
    for line in (root / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    for requirement in map(Requirement, wanted):
        name = canonicalize_name(requirement.name)
        if name == "driftline":  # an extra made of other extras
            continue
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_every_driftline_command_with_arguments_runs_from_the_quick_starts_venv():
    # After the quick start `driftline` is not on the PATH: commands say .venv/bin/driftline.
    # (A command given with its options; `driftline drift` alone names it in prose.)
    for match in re.finditer(r"(\S*)driftline (?:serve|demo|drift|dashboards|produce)\b[^`\n]*? --", README):
        assert match.group(1).endswith(".venv/bin/"), README[match.start() - 40:match.end() + 40]


def test_the_required_event_fields_are_the_ones_the_decoder_requires():
    import msgspec

    from service.core.events import Infra, Label, Prediction

    for kind, struct in (("prediction", Prediction), ("label", Label), ("infra", Infra)):
        [listed] = re.findall(rf"- \*\*{kind}\*\*: required (.*?); optional", README, flags=re.S)
        required = {field.name for field in msgspec.structs.fields(struct) if field.required}
        assert set(re.findall(r"`([a-z_]+)`", listed)) == required, kind
