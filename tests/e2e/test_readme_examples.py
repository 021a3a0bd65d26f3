"""The README's examples, run as written against dockvol started the way `make run` starts it.

Every ```sh and ```python block of the README's single-engine sections ("Quick start", "Trying
it with curl" and its subsections, "A generated client", "Watching changes", "Cleaning up",
"Errors") runs here, in the README's order, the shell ones with bash and the Python ones with
this environment's Python, all in one scratch directory that stands for the newcomer's checkout
(`.dockvol/`, where `make run` keeps its token, and a link to `openapi/`). The blocks of "Fleet
mode" and "Deploy" are not run: they need a Swarm or an image build, which the fleet tier and
deploy/smoke.sh exercise. A ```sh block anywhere else fails the test, so none goes unchecked.

The service is `make run` itself (the "Quick start" block's first line; its second, `make test`,
is what runs this test), on this tier's engine: so its settings are deploy/run.sh's, none copied
here: the bind root /data, network none on an engine without a bridge network, a token made
under DOCKVOL_RUN_STATE. Two things differ from a newcomer's run, both said here: the port
(DOCKVOL_LISTEN picks a free one, and the README's `127.0.0.1:8080` is read as it), and a
`curl` shell function defined before each block (with `set -eu`: a failing command fails the
block) that calls the real curl with `-D` to keep the response headers and `--max-time` (the
watch stream never ends), and records its arguments, output and exit code; the README's commands
are otherwise run byte for byte. Each block starts with the README's own first "Trying it with
curl" block (TOKEN, API, H), as a newcomer's shell would have it. The watch example runs while
this test makes a volume labelled team=web, so that the stream has a change to show; the Python
watch example likewise, while this test makes volumes until it prints one. The Python blocks
run as written too (the port aside), each on its own, after the README's shell block that
generates the client, and what they print is checked.

Each curl answer is checked against EXPECTED (and CLEANING_UP): its status (a 4xx only where the
README's comment names that status), and what the README says it shows (Location, pagination
headers, ETag, the nodes list and the watch stream as the README's comments show them, the
volume document's fields as the README's JSON example). The README's own cleaning up must leave
none of its volumes, bindings or groups behind, nor any file the examples made in the checkout;
whatever they leave anyway (and the host directories its bindings made under /data, and /data
itself if make run made it) this test removes: only what the examples' answers named
(containers by id, volumes by name and dockvol.create-id), never by name alone.
The README's names (site-data, b1, infracon...) already on the engine fail the test at once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import pathlib
import queue
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
import requests

from tests.support import IMAGE, engine_host, unique

from .conftest import ROOT, free_port

README = ROOT / "README.md"
CHECKED = (
    "Quick start",
    "Trying it with curl",
    "A generated client",
    "Watching changes",
    "Cleaning up",
    "Projects",
    "Backups",
    "Errors",
)
# The projects "Projects" starts `make run` with; the whole run has them (the tour's token is `*`).
PROJECTS = '{"web": {"quota": {"volumes": 1}}, "ci": {}}'

SWARM = ("Fleet mode", "Deploy")  # need a Swarm or an image build: the fleet tier and deploy/smoke.sh
CONTAINERS = ("b1", "b2", "infracon", "nginx", "tomcat")
VOLUMES = ("site-data", "site-restored", "site-copy", "site-v2", "site-py", "shop-data", "shop-restored")
BIND_ROOT = pathlib.Path("/data")
BACKUP_ROOT = pathlib.Path("/backups")  # deploy/run.sh's DOCKVOL_BACKUP_ROOTS
README_IMAGE = "busybox:stable"
ANONYMOUS = re.compile(r"[0-9a-f]{64}")

# Defined before each block: the README's curl, recorded. Its exit code is curl's.
PREAMBLE = r"""set -eu
curl() {
    local rec=$README_LOG/$EPOCHREALTIME
    printf '%s\0' "$@" >"$rec.args"
    command curl -D "$rec.headers" --max-time "${README_CURL_MAX_TIME:-120}" "$@" | tee "$rec.out"
    local rc=${PIPESTATUS[0]}
    echo "$rc" >"$rec.rc"
    return "$rc"
}
"""


@dataclasses.dataclass
class Block:
    section: str  # the ## heading it lies under
    line: int  # of its opening fence
    text: str
    lang: str = "sh"

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def readme_blocks(lang: str = "sh") -> list[Block]:
    blocks, section, fence, start, body = [], "", None, 0, []
    for number, line in enumerate(README.read_text().splitlines(), 1):
        if fence is not None:
            if line.startswith("```"):
                if fence == lang:
                    blocks.append(Block(section, start, "\n".join(body) + "\n", lang))
                fence = None
            else:
                body.append(line)
        elif line.startswith("```"):
            fence, start, body = line[3:].strip(), number, []
        elif line.startswith("## "):
            section = line[3:].strip()
    return blocks


def checked_blocks(lang: str = "sh") -> list[Block]:
    return [b for b in readme_blocks(lang) if b.section.startswith(CHECKED)]


@dataclasses.dataclass
class Command:
    text: str
    comments: list[str]  # the comment lines just above it, and its own comment at the line's end


def commands(block: Block) -> list[Command]:
    """The block's commands (a command may span lines: continued, or a quoted string)."""

    def complete(text: str) -> bool:
        try:
            shlex.split(text, comments=True)
        except ValueError:  # an open quote or a trailing backslash
            return False
        return True

    found: list[Command] = []
    above: list[str] = []
    current: list[str] = []
    for line in block.text.splitlines():
        if not current:
            if not line.strip():
                above = []
                continue
            if line.lstrip().startswith("#"):
                above.append(line.strip())
                continue
        current.append(line)
        text = "\n".join(current)
        if complete(text):
            inline = re.search(r"\s#\s(.*)$", current[-1])
            found.append(Command(text, above + ([inline.group(1)] if inline else [])))
            above, current = [], []
    assert not current, f"{block.where}: an unfinished command: {current}"
    return found


def curls_in(command: Command) -> int:
    return len(re.findall(r"(?:^|[\s(|;])curl\s", command.text))


@dataclasses.dataclass
class Call:
    """One curl the README ran: what it asked, what it got."""

    command: Command
    args: list[str]
    status: int
    headers: dict[str, str]
    out: bytes
    rc: int

    @property
    def method(self) -> str:
        for i, arg in enumerate(self.args):
            if arg == "-X":
                return self.args[i + 1]
        if "-T" in self.args:
            return "PUT"
        return "POST" if "-d" in self.args else "GET"

    @property
    def url(self) -> str:
        return next(a for a in self.args if a.startswith("http"))

    def json(self) -> Any:
        body = self.out.split(b"\r\n\r\n", 1)[1] if self.out.startswith(b"HTTP/") else self.out
        return json.loads(body)

    def __str__(self) -> str:
        return f"{self.command.text}\n-> {self.status}, curl exit {self.rc}: {self.out[:600]!r}"


def read_calls(log: pathlib.Path) -> list[tuple[list[str], int, dict[str, str], bytes, int]]:
    calls = []
    for args_file in sorted(log.glob("*.args"), key=lambda p: float(p.name[: -len(".args")])):
        stem = args_file.with_suffix("")
        args = args_file.read_bytes().decode().split("\0")[:-1]
        raw = pathlib.Path(f"{stem}.headers").read_text() if pathlib.Path(f"{stem}.headers").exists() else ""
        # The last response's status and headers: an upload gets a 100 Continue first.
        responses = [r for r in re.split(r"\r?\n\r?\n", raw) if r.startswith("HTTP/")]
        status, headers = 0, {}
        if responses:
            first, *rest = responses[-1].splitlines()
            status = int(first.split()[1])
            headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in rest if ":" in h)}
        out = pathlib.Path(f"{stem}.out").read_bytes()
        rc = int(pathlib.Path(f"{stem}.rc").read_text()) if pathlib.Path(f"{stem}.rc").exists() else -1
        calls.append((args, status, headers, out, rc))
        for suffix in (".args", ".headers", ".out", ".rc"):
            pathlib.Path(f"{stem}{suffix}").unlink(missing_ok=True)
    return calls


@dataclasses.dataclass
class Run:
    """`make run`, and the scratch directory the README's blocks run in."""

    port: int
    cwd: pathlib.Path
    log: pathlib.Path
    sdk: docker.DockerClient
    # What the examples made, to be taken away whatever happens (the engine may be shared: only
    # these, never by name alone): containers by id, volumes by name with their dockvol.create-id.
    containers: set[str] = dataclasses.field(default_factory=set)
    volumes: dict[str, str] = dataclasses.field(default_factory=dict)
    seen: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the tour's answers showed

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def as_written(self, text: str) -> str:
        """The README's text, on this run's port (and with the engine tiers' image, if another)."""
        return text.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}").replace(README_IMAGE, IMAGE)

    def bash(self, block: Block, variables: Block | None, env: dict[str, str] | None = None, **kw: Any):
        script = PREAMBLE + (self.as_written(variables.text) if variables else "") + self.as_written(block.text)
        return subprocess.Popen(
            ["bash", "-c", script],
            cwd=self.cwd,
            env={**os.environ, "README_LOG": str(self.log), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **kw,
        )

    def python(self, block: Block, **kw: Any) -> subprocess.Popen[str]:
        """A Python block as written (on this run's port), run on its own in the checkout, with
        the environment the shell blocks have and this environment's Python (where the README's
        `pip install openapi-python-client` finds the client's packages). With -c, as in an
        interpreter started there, the checkout is on the path: the generated client imports."""
        return subprocess.Popen(
            [sys.executable, "-c", self.as_written(block.text)],
            cwd=self.cwd,
            env={**os.environ, "README_LOG": str(self.log)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kw,
        )

    def note_volume(self, name: str) -> None:
        """A volume a Python block made (no curl records it): taken away at the end if left."""
        try:
            self.volumes[name] = self.sdk.volumes.get(name).attrs["Labels"]["dockvol.create-id"]
        except docker.errors.NotFound:
            pass

    def run(self, block: Block, variables: Block | None, env: dict[str, str] | None = None) -> list[Call]:
        """Run one block; its curls, each paired with the README command that made it."""
        proc = self.bash(block, variables, env)
        try:
            output, _ = proc.communicate(timeout=600)
        finally:
            proc.kill()
            recorded = self.recorded()
        assert proc.returncode == 0, f"{block.where} failed (exit {proc.returncode}):\n{output.decode()[-3000:]}"
        return self.calls(block, recorded)

    def recorded(self) -> list[tuple[list[str], int, dict[str, str], bytes, int]]:
        """The curls the log holds (taken out of it), noting what each made."""
        recorded = read_calls(self.log)
        names = set()
        for _, status, _, out, _ in recorded:
            try:
                body = json.loads(out.split(b"\r\n\r\n", 1)[1] if out.startswith(b"HTTP/") else out)
            except ValueError:
                continue
            if not (200 <= status < 300 and isinstance(body, dict)):
                continue
            if "mountpoint" in body:  # a volume
                names.add(body["name"])
            if "mounts" in body and "id" in body:  # a binding, and its anonymous volumes
                self.containers.add(body["id"])
                names |= {m["name"] for m in body["mounts"] if m["type"] == "volume" and ANONYMOUS.match(m["name"])}
            if "infra" in body:  # a sharing group
                self.containers.add(body["infra"]["id"])
        for name in names - self.volumes.keys():
            try:
                self.volumes[name] = self.sdk.volumes.get(name).attrs["Labels"]["dockvol.create-id"]
            except docker.errors.NotFound:  # gone already (renamed, removed with its binding)
                pass
        return recorded

    def cleanup(self) -> None:
        for cid in self.containers:
            try:
                self.sdk.containers.get(cid).remove(force=True)
            except docker.errors.NotFound:
                pass
        for name, create_id in self.volumes.items():
            try:
                volume = self.sdk.volumes.get(name)
            except docker.errors.NotFound:
                continue
            if (volume.attrs.get("Labels") or {}).get("dockvol.create-id") == create_id:
                volume.remove(force=True)

    def left(self) -> list[str]:
        """What the examples made that is still there."""
        found = [c.name for c in self.sdk.containers.list(all=True) if c.id in self.containers]
        for v in self.sdk.volumes.list():
            if v.name in self.volumes and self.volumes[v.name] == (v.attrs.get("Labels") or {}).get(
                "dockvol.create-id"
            ):
                found.append(v.name)
        return found

    def calls(self, block: Block, recorded: list[tuple[list[str], int, dict[str, str], bytes, int]]) -> list[Call]:
        cmds = commands(block)
        made = [c for c in cmds for _ in range(curls_in(c))]
        # A polling loop (`until curl ...; do sleep 1; done`) runs its one curl until the answer
        # says done: the same curl again and again counts as one, its last.
        recorded = [r for i, r in enumerate(recorded) if i + 1 == len(recorded) or recorded[i + 1][0] != r[0]]
        # The variables block, sourced first, runs no curl: each recorded curl is one of this block's.
        assert len(recorded) == len(made), f"{block.where}: {len(made)} curls written, {len(recorded)} ran"
        return [Call(cmd, *rec) for cmd, rec in zip(made, recorded, strict=True)]


def created_under(root: pathlib.Path, before: set[pathlib.Path]) -> list[pathlib.Path]:
    """The topmost paths under root that were not there before."""
    new: list[pathlib.Path] = []
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path not in before and not any(parent in new for parent in path.parents):
                new.append(path)
    return new


@pytest.fixture(scope="module")
def readme_turn() -> Iterator[None]:
    """The README names host paths (/data, /backups) that the two engines' legs of make test would
    share: their examples take turns, each leaving those folders as it found them."""
    with open("/tmp/dockvol-readme-examples.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="module")
def make_run(tmp_path_factory, readme_turn) -> Iterator[Run]:
    sdk = docker.DockerClient(base_url=engine_host(), version="auto", timeout=30)
    taken = [c.name for c in sdk.containers.list(all=True) if c.name in CONTAINERS]
    taken += [v.name for v in sdk.volumes.list() if v.name in VOLUMES]
    if taken:
        pytest.fail(f"the README's examples would meet these on the engine (remove them): {taken}", pytrace=False)
    root_existed = BIND_ROOT.exists()
    before = set(BIND_ROOT.rglob("*")) if root_existed else set()
    backup_root_existed = BACKUP_ROOT.exists()
    backups_before = set(BACKUP_ROOT.rglob("*")) if backup_root_existed else set()

    scratch = tmp_path_factory.mktemp("readme")
    cwd = scratch / "checkout"
    cwd.mkdir()
    (cwd / "openapi").symlink_to(ROOT / "openapi")  # the generated-client example reads the spec from here
    log = scratch / "calls"
    log.mkdir()
    (scratch / "metrics").mkdir()
    run = Run(free_port(), cwd, log, sdk)

    two_commands = next(b for b in readme_blocks() if b.section == "Quick start")
    lines = [c.text.split("#")[0].strip() for c in commands(two_commands)]
    assert lines == ["make run", "make test"], f"{two_commands.where}: {lines}"
    # make run's own settings only: none of the caller's dockvol or engine settings leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKVOL_", "DOCKER_"))}
    env |= {
        "DOCKER_HOST": engine_host(),
        "DOCKVOL_LISTEN": f"127.0.0.1:{run.port}",
        "DOCKVOL_RUN_STATE": str(cwd / ".dockvol"),
        "DOCKVOL_PROJECTS": PROJECTS,
        "PROMETHEUS_MULTIPROC_DIR": str(scratch / "metrics"),
    }
    service_log = scratch / "make-run.log"
    with service_log.open("wb") as out:
        service = subprocess.Popen(
            ["bash", "-c", lines[0]], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert service.poll() is None, f"make run ended:\n{service_log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"make run did not answer:\n{service_log.read_text()[-3000:]}"
            try:
                if requests.get(f"{run.base}/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        said = service_log.read_text()
        assert "bind sources may lie under /data" in said and "containers get network none" in said, said[-3000:]
        yield run
    finally:
        os.killpg(service.pid, signal.SIGINT)  # Ctrl-C, as a newcomer stops it
        try:
            service.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
        run.cleanup()
        for path in created_under(BIND_ROOT, before):
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)
        if not root_existed and BIND_ROOT.exists():
            BIND_ROOT.rmdir()
        for path in created_under(BACKUP_ROOT, backups_before):  # the repositories' data (forgotten, not removed)
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)
        if not backup_root_existed and BACKUP_ROOT.exists():
            BACKUP_ROOT.rmdir()
        sdk.close()
    # Ctrl-C stopped it quietly: nothing but dockvol's and gunicorn's JSON lines and make run's own
    # messages, no traceback (a gevent worker's SystemExit printed one, which read like a crash).
    raw = [line for line in service_log.read_text().splitlines() if not line.startswith("{")]
    assert not [line for line in raw if line.startswith("Traceback")], "\n".join(raw[-60:])


def test_every_sh_block_is_run_or_named_as_needing_a_swarm():
    blocks = readme_blocks()
    stray = [b.where for b in blocks if not b.section.startswith(CHECKED + SWARM)]
    assert not stray, f"README shell blocks in sections this test does not know: {stray}"
    assert len(checked_blocks()) >= 10  # the parse found the examples
    python = readme_blocks("python")
    stray = [b.where for b in python if not b.section.startswith(CHECKED)]
    assert not stray, f"README Python blocks in sections this test does not run: {stray}"
    assert len(python) >= 2


# What each curl of the tour must answer, in the README's order: method, URL after $API, status,
# and a check of what the README says it shows (given the call, and what the calls so far gave).
Check = Callable[["Call", dict[str, Any]], None]


def volume_named(name: str) -> Check:
    def check(call: Call, seen: dict[str, Any]) -> None:
        assert call.json()["name"] == name

    return check


def created_site_data(call: Call, seen: dict[str, Any]) -> None:
    assert call.headers["location"] == "/api/v1/volumes/site-data"  # the README's comment
    assert call.json()["labels"] == {"team": "web"}


def anonymous_volume(call: Call, seen: dict[str, Any]) -> None:
    body = call.json()
    assert body["anonymous"] and body["labels"] == {"team": "web"}
    seen["anonymous"] = body["name"]


def problem(status: int, **fields: Any) -> Check:
    def check(call: Call, seen: dict[str, Any]) -> None:
        body = call.json()
        assert body["status"] == status and body["type"].startswith("urn:dockvol:problem:")
        for key, value in fields.items():
            assert body[key] == value, (key, body)

    return check


def paginated(call: Call, seen: dict[str, Any]) -> None:
    assert "x-pagination" in call.headers and 'rel="first"' in call.headers["link"]


def names_include(*names: str) -> Check:
    def check(call: Call, seen: dict[str, Any]) -> None:
        assert set(names) <= {v["name"] for v in call.json()}

    return check


def named_site_volumes(call: Call, seen: dict[str, Any]) -> None:
    body = call.json()
    assert "site-data" in {v["name"] for v in body}, body
    assert all(not v["anonymous"] and v["managed"] and "site" in v["name"] for v in body), body


def one_volume(call: Call, seen: dict[str, Any]) -> None:
    assert call.headers["etag"].startswith('"')
    seen["volume document"] = call.json()


def backed_up(call: Call, seen: dict[str, Any]) -> None:
    with tarfile.open(seen["cwd"] / "site-data.tar") as tar:
        page = tar.extractfile(next(m for m in tar if m.name.endswith("html/index.html")))
        assert page is not None and page.read() == b"<h1>hello</h1>\n"


def imported(entries: int) -> Check:
    def check(call: Call, seen: dict[str, Any]) -> None:
        assert call.json()["entries"] == entries

    return check


def browsed(call: Call, seen: dict[str, Any]) -> None:
    assert [e["name"] for e in call.json()["entries"]] == ["index.html"]


def the_page(call: Call, seen: dict[str, Any]) -> None:
    assert call.out == b"<h1>hello</h1>\n"


def usage(call: Call, seen: dict[str, Any]) -> None:
    assert (call.json()["files"], call.json()["bytes"]) == (1, 15)


def binding(name: str, state: str) -> Check:
    def check(call: Call, seen: dict[str, Any]) -> None:
        assert (call.json()["name"], call.json()["state"]) == (name, state)

    return check


def b1_mounts(call: Call, seen: dict[str, Any]) -> None:
    # what `docker inspect` shows: type, the anonymous volume's name, its host source, the target
    (mount,) = call.json()["mounts"]
    assert mount["type"] == "volume" and mount["name"] and mount["source"] and mount["target"] == "/data"


def binding_names(*names: str) -> Check:
    def check(call: Call, seen: dict[str, Any]) -> None:
        assert [b["name"] for b in call.json()] == list(names)

    return check


def in_use_by_b2(call: Call, seen: dict[str, Any]) -> None:
    problem(409)(call, seen)
    (user,) = call.json()["used_by"]
    assert (user["binding"], user["target"], user["read_only"]) == ("b2", "/srv", True)
    seen["used_by"] = user


def group_members(call: Call, seen: dict[str, Any]) -> None:
    body = call.json()
    # (in a list, other groups may show too, on an engine that other tests share)
    (group,) = [g for g in body if g["name"] == "infracon"] if isinstance(body, list) else [body]
    assert group["name"] == "infracon" and sorted(group["members"]) == ["nginx", "tomcat"]


def nodes_as_shown(call: Call, seen: dict[str, Any]) -> None:
    """As the README's comment under the command shows it; host name and versions are the engine's."""
    after = after_in_readme(call.command.text.splitlines()[-1])
    shown = json.loads(" ".join(line.lstrip("#").strip() for line in after))
    info = seen["sdk"].info()
    (node,) = call.json()
    assert node.keys() == shown[0].keys()
    assert {k: node[k] for k in ("role", "availability", "state", "dockvol")} == {
        k: shown[0][k] for k in ("role", "availability", "state", "dockvol")
    }
    assert (node["name"], node["engine_version"]) == (info["Name"], info["ServerVersion"])


def etag_read(call: Call, seen: dict[str, Any]) -> None:
    assert call.headers["etag"].startswith('"')


def pruned(*, dry_run: bool) -> Check:
    """The dry run lists what the prune then deletes: the same body, the same volumes."""

    def check(call: Call, seen: dict[str, Any]) -> None:
        body = call.json()
        assert body["dry_run"] is dry_run
        assert sorted(body["volumes_deleted"]) == sorted([seen["anonymous"], "site-data"])

    return check


EXPECTED: list[tuple[str, str, int, Check | None]] = [
    # Trying it with curl: volumes
    ("POST", "/volumes", 201, created_site_data),
    ("POST", "/volumes", 201, anonymous_volume),
    ("POST", "/volumes", 409, problem(409, detail="volume site-data exists already")),
    ("GET", "/volumes?page=1&page_size=20", 200, paginated),
    ("GET", "/volumes?label=team=web&dangling=true", 200, names_include("site-data")),
    ("GET", "/volumes?anonymous=false&managed=true&name=site", 200, named_site_volumes),
    ("GET", "/volumes/site-data", 200, one_volume),
    # Volume data
    ("PUT", "/volumes/site-data/archive", 200, imported(2)),
    ("GET", "/volumes/site-data/archive", 200, backed_up),
    ("POST", "/volumes", 201, volume_named("site-restored")),
    ("PUT", "/volumes/site-restored/archive", 200, imported(3)),
    ("PUT", "/volumes/site-restored/archive?path=html", 200, imported(1)),
    ("POST", "/volumes/site-data/clone", 201, volume_named("site-copy")),
    ("POST", "/volumes/site-copy/rename", 200, volume_named("site-v2")),
    ("GET", "/volumes/site-data/files?path=html", 200, browsed),
    ("GET", "/volumes/site-data/files?path=html/index.html", 200, the_page),
    ("GET", "/volumes/site-data/usage", 200, usage),
    # Bindings
    ("POST", "/bindings", 201, binding("b1", "running")),
    ("POST", "/bindings", 201, binding("b2", "running")),
    ("GET", "/bindings/b1", 200, b1_mounts),
    ("GET", "/bindings?volume=site-data&state=running", 200, binding_names("b2")),
    ("DELETE", "/volumes/site-data", 409, in_use_by_b2),
    ("PUT", "/bindings/b1", 200, None),
    ("POST", "/bindings/b1/stop", 200, None),
    ("POST", "/bindings/b1/start", 200, binding("b1", "running")),
    ("DELETE", "/bindings/b2", 204, None),
    ("DELETE", "/bindings/b1?remove_anonymous_volumes=true", 204, None),
    # Sharing groups
    ("POST", "/sharing-groups", 201, None),
    ("POST", "/bindings", 201, binding("nginx", "running")),
    ("POST", "/bindings", 201, binding("tomcat", "running")),
    ("GET", "/sharing-groups", 200, group_members),
    ("GET", "/sharing-groups/infracon", 200, group_members),
    ("DELETE", "/sharing-groups/infracon", 409, problem(409, members=["nginx", "tomcat"])),
    ("DELETE", "/sharing-groups/infracon?cascade=true", 204, None),
    # Nodes
    ("GET", "/nodes", 200, nodes_as_shown),
]

CLEANING_UP: list[tuple[str, str, int, Check | None]] = [
    ("DELETE", "/volumes/site-restored", 204, None),
    ("GET", "/volumes/site-v2", 200, etag_read),
    ("DELETE", "/volumes/site-v2", 204, None),
    ("POST", "/volumes/prune", 200, pruned(dry_run=True)),
    ("POST", "/volumes/prune", 200, pruned(dry_run=False)),
]


def variables_block() -> Block:
    """The README's first "Trying it with curl" block (TOKEN, API, H), as a newcomer's shell has it."""
    return [b for b in checked_blocks() if b.section == "Trying it with curl"][0]


def check_calls(make_run: Run, calls: list[Call], expected: list[tuple[str, str, int, Check | None]]) -> None:
    """Each curl against what the README says it does: method, URL, status, what it shows."""
    assert len(calls) == len(expected), [f"{c.method} {c.url}" for c in calls]
    api = f"{make_run.base}/api/v1"
    for call, (method, path, status, check) in zip(calls, expected, strict=True):
        assert (call.method, call.url) == (method, api + path), str(call)
        assert call.rc == 0, str(call)
        assert call.status == status, str(call)
        if status >= 400:  # an error only where the README says the example shows one
            assert any(str(status) in comment for comment in call.command.comments), (
                f"the README does not say this example answers {status}: {call.command.comments}\n{call}"
            )
        if check is not None:
            try:
                check(call, make_run.seen)
            except (AssertionError, KeyError, ValueError) as exc:
                raise AssertionError(f"{call}\n{exc!r}") from exc


def test_the_curl_tour_as_written(make_run):
    """Trying it with curl and its subsections, block after block, every answer checked."""
    blocks = [b for b in checked_blocks() if b.section == "Trying it with curl"]
    variables, tour = blocks[0], blocks[1:]

    shown = subprocess.run(
        ["bash", "-c", make_run.as_written(variables.text) + 'printf "%s\\n" "$TOKEN" "$API" "$H"'],
        cwd=make_run.cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert shown[1] == f"{make_run.base}/api/v1" and shown[0] and shown[2] == f"Authorization: Bearer {shown[0]}"

    make_run.seen.update(cwd=make_run.cwd, sdk=make_run.sdk)
    check_calls(make_run, [call for block in tour for call in make_run.run(block, variables)], EXPECTED)

    # The README's volume document has the fields dockvol shows, and its used_by entry too.
    documents = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", README.read_text(), re.S)]
    (example,) = [d for d in documents if "used_by" in d]  # the volume's (Backups shows an S3 body)
    assert example.keys() == make_run.seen["volume document"].keys()
    assert example["used_by"][0].keys() == make_run.seen["used_by"].keys()
    make_run.seen["tour"] = "done"


def after_in_readme(last_line: str) -> list[str]:
    """The comment lines right under the command that ends with this line: an answer shown."""
    lines = README.read_text().splitlines()
    at = lines.index(last_line)
    after = []
    for line in lines[at + 1 :]:
        if not line.startswith("#"):
            break
        after.append(line)
    return after


@pytest.fixture(scope="module")
def generated_client(make_run) -> Run:
    """The README's shell block of "A generated client": pip finds openapi-python-client in the
    test environment (no download), and the client is made from the committed spec into the
    checkout, where the Python blocks import it."""
    (block,) = [b for b in checked_blocks() if b.section == "A generated client"]
    venv = pathlib.Path(sys.executable).parent
    proc = make_run.bash(block, None, env={"PATH": f"{venv}:{os.environ['PATH']}"})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out.decode()[-3000:]
    assert make_run.calls(block, make_run.recorded()) == []
    assert (make_run.cwd / "dockvol_client" / "__init__.py").exists()
    return make_run


def test_the_generated_client_as_written(generated_client):
    """The client example, run as written: it makes a volume, reads it with its ETag, reads one
    that is not there (a Problem), and deletes the first only if unchanged; none is left."""
    run = generated_client
    (block,) = [b for b in checked_blocks("python") if b.section == "A generated client"]
    proc = run.python(block)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        run.note_volume("site-py")
    assert proc.returncode == 0, f"{block.where} failed:\n{out[-3000:]}"
    made, read, missing = out.splitlines()
    assert re.fullmatch(r"site-py /\S+/site-py/_data", made), out
    assert re.fullmatch(r'200 "[^"]+"', read), out
    assert missing.startswith("404 ") and "no-such-volume" in missing, out
    assert "site-py" not in {v.name for v in run.sdk.volumes.list()}, "the example's volume is left"


def test_watching_changes_in_python_as_written(generated_client):
    """The Python stream example prints a change to a volume: this test makes volumes until it
    does (the first may come before the stream is open), then stops it."""
    run = generated_client
    (block,) = [b for b in checked_blocks("python") if b.section == "Watching changes"]
    token = (run.cwd / ".dockvol" / "token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    proc = run.python(block, bufsize=1)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    made: list[str] = []
    printed: list[str] = []
    try:
        for _ in range(10):
            name = unique("readme-pywatch")
            r = requests.post(f"{run.base}/api/v1/volumes", json={"name": name}, headers=headers, timeout=30)
            assert r.status_code == 201, r.text
            made.append(name)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and f"volume {name}" not in printed:
                try:
                    printed.append(lines.get(timeout=0.1).rstrip("\n"))
                except queue.Empty:
                    assert proc.poll() is None, f"{block.where} ended:\n" + "\n".join(printed)
            if f"volume {name}" in printed:
                break
    finally:
        proc.kill()
        proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()
        for name in made:
            requests.delete(f"{run.base}/api/v1/volumes/{name}", headers=headers, timeout=30)
    assert any(f"volume {name}" == line for name in made for line in printed), printed
    assert not any("Traceback" in line for line in printed), printed


def test_projects_start_make_run_with_what_this_test_gives_it():
    (section,) = [line for line in README.read_text().splitlines() if line.startswith("`DOCKVOL_PROJECTS=")]
    assert section.startswith(f"`DOCKVOL_PROJECTS='{PROJECTS}' make run`")


def shows_project(project: str) -> Check:
    def check(call: Call, seen: dict[str, Any]) -> None:
        assert call.json()["project"] == project

    return check


def quota_refused(call: Call, seen: dict[str, Any]) -> None:
    body = call.json()
    assert body["type"].endswith("quota-exceeded") and (body["quota"], body["limit"], body["used"]) == ("volumes", 1, 1)


def only_web(call: Call, seen: dict[str, Any]) -> None:
    (web,) = call.json()
    assert (web["name"], web["quota"], web["usage"]["volumes"]) == ("web", {"volumes": 1}, 1)


def web_data_only(call: Call, seen: dict[str, Any]) -> None:
    assert [(v["name"], v["project"]) for v in call.json()] == [("web-data", "web")]


def not_named(call: Call, seen: dict[str, Any]) -> None:
    assert "web" not in call.json()["detail"].replace("web-data", "")


PROJECTS_TOUR: list[tuple[str, str, int, Check | None]] = [
    ("POST", "/volumes", 201, shows_project("web")),
    ("GET", "/volumes/web-data", 404, problem(404, detail="volume web-data does not exist")),
    ("POST", "/volumes", 409, not_named),
    ("POST", "/volumes", 403, quota_refused),
    ("GET", "/projects", 200, only_web),
    ("GET", "/volumes?project=web", 200, web_data_only),
    ("DELETE", "/volumes/web-data", 204, None),
]


def test_projects_as_written(make_run):
    """The Projects walk-through: two projects' tokens, a name another holds, a refused quota."""
    (block,) = [b for b in checked_blocks() if b.section.startswith("Projects")]
    check_calls(make_run, make_run.run(block, variables_block()), PROJECTS_TOUR)
    assert "web-data" not in make_run.left()


def repository_made(call: Call, seen: dict[str, Any]) -> None:
    body = call.json()
    assert call.headers["location"] == "/api/v1/repositories/offsite" and "password" not in body
    assert body["status"]["reachable"] is True and body["path"] == "/backups/offsite"
    assert b"correct horse" not in call.out


def running(call: Call, seen: dict[str, Any]) -> None:
    body = call.json()
    assert body["status"] == "running" and body["id"].startswith("run-")
    assert call.headers["location"] == f"/api/v1/backups/{body['id']}"


def status(expected: str) -> Check:
    def check(call: Call, seen: dict[str, Any]) -> None:
        assert call.json()["status"] == expected, call.json()

    return check


def shop_backups(call: Call, seen: dict[str, Any]) -> None:
    (backup,) = call.json()
    assert (backup["volume"], backup["repository"], backup["status"]) == ("shop-data", "offsite", "completed")
    assert re.fullmatch("[0-9a-f]{64}", backup["id"]) and backup["added_bytes"] > 0


def policy_made(call: Call, seen: dict[str, Any]) -> None:
    body = call.json()
    assert call.headers["location"] == "/api/v1/backup-policies/nightly" and call.headers["etag"]
    assert len(body["next_runs"]) == 3 and all(t[11:19] == "02:30:00" for t in body["next_runs"])
    assert body["retention"]["keep_daily"] == 7 and body["volumes"] == ["shop-data"]


def policy_ran(call: Call, seen: dict[str, Any]) -> None:
    (backup,) = call.json()
    assert (backup["volume"], backup["policy"], backup["status"]) == ("shop-data", "nightly", "running")


def policy_pruned(call: Call, seen: dict[str, Any]) -> None:
    body = call.json()
    assert body["dry_run"] is True and body["remove"] == []
    assert [k["reasons"] for k in body["keep"]] == [["keep_daily"]]


def shop_page(call: Call, seen: dict[str, Any]) -> None:
    assert call.out.endswith(b"<h1>shop</h1>\n")


def shop_replaced(call: Call, seen: dict[str, Any]) -> None:
    """A restore with replace: the volume holds the backup's files alone (other.html, put in
    after the backup, is gone)."""
    assert [e["name"] for e in call.json()["entries"]] == ["index.html"], call.json()


BACKUPS_TOUR: list[tuple[str, str, int, Check | None]] = [
    ("POST", "/volumes", 201, volume_named("shop-data")),
    ("PUT", "/volumes/shop-data/archive", 200, None),
    ("POST", "/repositories", 201, repository_made),
    ("POST", "/backups", 202, running),
    ("GET", "/backups/run-", 200, status("completed")),
    ("GET", "/backups?volume=shop-data", 200, shop_backups),
    ("GET", "/backups/run-", 200, None),  # the archive
    ("POST", "/backup-policies", 201, policy_made),
    ("POST", "/backup-policies/nightly/runs", 202, policy_ran),
    ("GET", "/backups?policy=nightly&status=completed", 200, None),
    ("POST", "/backup-policies/nightly/prune", 200, policy_pruned),
    ("DELETE", "/backup-policies/nightly", 204, None),
    ("POST", "/restores", 202, status("running")),
    ("GET", "/restores/", 200, status("completed")),
    ("GET", "/volumes/shop-restored/files?path=index.html", 200, shop_page),
    ("PUT", "/volumes/shop-data/archive", 200, None),
    ("POST", "/restores", 202, status("running")),
    ("GET", "/restores/", 200, status("completed")),
    ("GET", "/volumes/shop-data/files", 200, shop_replaced),
    ("DELETE", "/backups/run-", 204, None),
    ("DELETE", "/repositories/offsite", 204, None),
    ("DELETE", "/volumes/shop-restored", 204, None),
    ("DELETE", "/volumes/shop-data", 204, None),
]


def test_backups_as_written(make_run):
    """The Backups walk-through: a repository, a backup awaited, a restore awaited, all forgotten.
    Run ids are the run's own: a URL is matched up to them."""
    (block,) = [b for b in checked_blocks() if b.section.startswith("Backups")]
    calls = make_run.run(block, variables_block())
    assert len(calls) == len(BACKUPS_TOUR), [f"{c.method} {c.url}" for c in calls]
    api = f"{make_run.base}/api/v1"
    for call, (method, path, status_code, check) in zip(calls, BACKUPS_TOUR, strict=True):
        assert call.method == method and call.url.startswith(api + path), str(call)
        assert (call.rc, call.status) == (0, status_code), str(call)
        if check is not None:
            check(call, make_run.seen)
    assert not {"shop-data", "shop-restored"} & set(make_run.left())
    assert not (make_run.cwd / "shop").exists()


def test_watching_changes_as_written(make_run):
    """The stream, followed while a volume labelled team=web is made, looks as the README shows it."""
    (block,) = [b for b in checked_blocks() if b.section == "Watching changes"]
    (command,) = commands(block)
    variables = [b for b in checked_blocks() if b.section == "Trying it with curl"][0]
    proc = make_run.bash(block, variables, env={"README_CURL_MAX_TIME": "6"})
    name = unique("readme-watch")
    token = (make_run.cwd / ".dockvol" / "token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 5
        while not any("200" in p.read_text() for p in make_run.log.glob("*.headers")):
            assert time.monotonic() < deadline and proc.poll() is None, "the stream did not answer"
            time.sleep(0.05)
        r = requests.post(
            f"{make_run.base}/api/v1/volumes",
            json={"name": name, "labels": {"team": "web"}},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        requests.delete(f"{make_run.base}/api/v1/volumes/{name}", headers=headers, timeout=30)
    assert proc.returncode == 28  # curl's --max-time: the stream itself never ends
    (call,) = make_run.calls(block, make_run.recorded())
    assert (call.status, call.rc) == (200, 28)
    events = [dict(line.split(": ", 1) for line in e.splitlines()) for e in call.out.decode().split("\n\n")]
    # (on a shared engine, other volumes labelled team=web may come by too)
    (created,) = [e for e in events if e.get("event") == "created" and f'"name": "{name}"' in e.get("data", "")]
    shown = dict(line.lstrip("# ").split(": ", 1) for line in after_in_readme(command.text.splitlines()[-1]))
    assert created.keys() == shown.keys() == {"id", "event", "data"}
    assert re.fullmatch(r"\d+-\d+", created["id"]) and re.fullmatch(r"\d+-\d+", shown["id"])
    data, example = json.loads(created["data"]), json.loads(shown["data"].replace("{...}", "{}"))
    assert data.keys() == example.keys() and (data["resource"], data["name"]) == ("volume", name)
    assert data["object"]["labels"] == {"team": "web"}


def test_cleaning_up_as_written(generated_client):
    """Cleaning up, after every other example: the tour's volumes deleted (the prune's dry run
    lists what the prune then deletes), and the files the examples made in the checkout gone."""
    run = generated_client
    assert run.seen.get("tour") == "done", "the curl tour did not run to its end"
    (block,) = [b for b in checked_blocks() if b.section == "Cleaning up"]
    check_calls(run, run.run(block, variables_block()), CLEANING_UP)

    # Every volume, binding and group the examples made is gone, and so are their files.
    assert run.volumes.keys() >= {"site-data", "site-restored", "site-v2", run.seen["anonymous"]}
    assert run.left() == []
    made = ["site", "site.tar", "site.tar.gz", "site-data.tar", "dockvol_client"]
    assert [name for name in made if (run.cwd / name).exists()] == []
    assert sorted(p.name for p in run.cwd.iterdir()) == [".dockvol", "openapi"]
