"""`scripts/bench-retag rounds`: stackctl retag/tag against oras tag, on a loopback registry
and through a delay proxy; the rounds stackctl made, from the registry's access log.
Standard library only (the machine has python3); see scripts/bench-retag for the usage."""

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RUNS", "15"))
RTT_MS = int(os.environ.get("RTT_MS", "50"))
N = 4
TIME = shutil.which("time") or "/usr/bin/time"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(cmd, **kw):
    """Run cmd; return (wall seconds, peak RSS in MB).

    The peak RSS is GNU time's (%M), not this process's wait4: a child forked from Python
    keeps the forked Python's high-water mark across exec, so wait4 reports Python's size
    (about 23 MB here) as the floor for every command. time's fork overhead (under 1 ms)
    is in the wall time of both tools alike."""
    fd, rss_file = tempfile.mkstemp(prefix="bench-rss.")
    os.close(fd)
    t0 = time.perf_counter()
    p = subprocess.run([TIME, "-f", "%M", "-o", rss_file, *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    wall = time.perf_counter() - t0
    with open(rss_file) as f:
        rss_kb = int(f.read().split()[-1])
    os.unlink(rss_file)
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{p.stderr.decode()}")
    return wall, rss_kb / 1024


def stackctl_binary(work):
    if os.environ.get("STACKCTL"):
        return os.environ["STACKCTL"]
    print("bench: building stackctl (release)", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "stackctl"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    dst = os.path.join(work, "stackctl")
    shutil.copy(os.path.join(target, "release", "stackctl"), dst)
    return dst


def oras_binary(work):
    if os.environ.get("ORAS"):
        return os.environ["ORAS"]
    print("bench: fetching Debian trixie's oras", file=sys.stderr)
    apt = os.path.join(work, "apt")
    for d in ("lists/partial", "cache/archives/partial"):
        os.makedirs(os.path.join(apt, d), exist_ok=True)
    with open(os.path.join(apt, "sources.list"), "w") as f:
        f.write("deb http://deb.debian.org/debian trixie main\n")
    opts = ["-o", f"Dir::Etc::sourcelist={apt}/sources.list", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={apt}/lists", "-o", f"Dir::Cache={apt}/cache",
            "-o", "APT::Sandbox::User=root"]
    subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", *opts, "download", "-qq", "oras"], cwd=work, check=True)
    deb = [f for f in os.listdir(work) if f.startswith("oras_") and f.endswith(".deb")][0]
    subprocess.run(["dpkg", "-x", os.path.join(work, deb), os.path.join(work, "oras")], check=True)
    return os.path.join(work, "oras", "usr", "bin", "oras")


def delay_proxy(listen, upstream, one_way_s):
    """A TCP proxy that holds every chunk one_way_s in each direction: +2*one_way_s per
    round trip on a kept-alive connection."""

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                await asyncio.sleep(one_way_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(cr, cw):
        ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pipe(cr, uw), pipe(ur, cw))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", listen)
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()


def rounds(log):
    """The manifest requests of an access-log excerpt, grouped into runs of one method."""
    seq = re.findall(r'"(GET|PUT|HEAD) /v2/bench/img\d+/manifests/', log)
    groups = []
    for m in seq:
        if groups and groups[-1][0] == m:
            groups[-1][1] += 1
        else:
            groups.append([m, 1])
    return groups


def main():
    work = tempfile.mkdtemp(prefix="bench-retag-rounds.")
    reg = None
    try:
        stackctl = stackctl_binary(work)
        oras = oras_binary(work)
        print(f"bench: {subprocess.run([oras, 'version'], capture_output=True, text=True).stdout.splitlines()[0]}",
              file=sys.stderr)
        port, pport = free_port(), free_port()
        host, phost = f"127.0.0.1:{port}", f"127.0.0.1:{pport}"
        os.makedirs(os.path.join(work, "storage"))
        cfg = os.path.join(work, "registry.yml")
        with open(cfg, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {work}/storage\n"
                    f"http:\n  addr: {host}\n")
        log_path = os.path.join(work, "registry.log")
        reg = subprocess.Popen(["docker-registry", "serve", cfg], stdout=open(log_path, "w"),
                               stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        delay_proxy(pport, port, RTT_MS / 2000)

        # Two contents per image (a, b): promotions alternate, so every run moves 4 targets.
        spec = os.path.join(work, "spec.yml")
        with open(spec, "w") as f:
            f.write("root: img0\nimages:\n")
            for i in range(N):
                f.write(f"  img{i}:\n    image_name: {phost}/bench/img{i}\n")
                if i:
                    f.write("    depend_on: img0\n")
                os.makedirs(os.path.join(work, "images", f"img{i}"), exist_ok=True)
                with open(os.path.join(work, "images", f"img{i}", "Dockerfile"), "w") as d:
                    d.write("FROM scratch\n")
            f.write('tag:\n  prefix: "2026.3"\n')
        for i in range(N):
            for v in "ab":
                data = os.path.join(work, f"data-{i}-{v}.txt")
                with open(data, "w") as d:
                    d.write(f"image {i} content {v}\n")
                subprocess.run([oras, "push", "--plain-http", f"{host}/bench/img{i}:2026.3-{v}",
                                f"data-{i}-{v}.txt"], cwd=work, check=True, stdout=subprocess.DEVNULL)

        env = dict(os.environ, HOME=work, DOCKER_CONFIG=os.path.join(work, "docker"))
        env.pop("RUST_LOG", None)
        src = f"{host}/bench/img0:2026.3-a"
        st, ot = [], []
        for r in range(RUNS):
            st.append(run([stackctl, "-q", "retag", src, f"s{r}"], env=env))
            ot.append(run([oras, "tag", "--plain-http", src, f"o{r}"], env=env))
        med = lambda xs, k: statistics.median(x[k] for x in xs)
        print(f"\nretag of one image, loopback registry, median of {RUNS} runs:")
        print(f"  stackctl retag   {med(st, 0) * 1000:7.1f} ms   {med(st, 1):6.1f} MB peak RSS")
        print(f"  oras tag         {med(ot, 0) * 1000:7.1f} ms   {med(ot, 1):6.1f} MB peak RSS")

        args = ["--spec", spec, "--repo", work, "--artifacts", os.path.join(work, "artifacts")]
        sp, op, seen = [], [], None
        runs = max(3, RUNS // 3)
        for r in range(runs):
            v = "ab"[r % 2]
            before = os.path.getsize(log_path)
            sp.append(run([stackctl, "-q", "tag", f"2026.3-{v}", *args], env=env))
            time.sleep(0.2)
            with open(log_path) as f:
                f.seek(before)
                seen = rounds(f.read())
            t0 = time.perf_counter()
            for i in range(N):
                run([oras, "tag", "--plain-http", f"{phost}/bench/img{i}:2026.3-{v}", "2026.3-oras"], env=env)
            op.append((time.perf_counter() - t0, 0))
        print(f"\ntag of a {N}-image stack through a proxy adding {RTT_MS} ms per round trip, "
              f"median of {runs} runs (targets exist and move each run):")
        print(f"  stackctl tag         {med(sp, 0):6.2f} s")
        print(f"  loop of oras tag     {med(op, 0):6.2f} s")
        print("  rounds stackctl made (access log, manifest requests in order): "
              + ", ".join(f"{m} x{n}" for m, n in seen) + f"  = {len(seen)} rounds")
    finally:
        if reg:
            reg.kill()
            reg.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
