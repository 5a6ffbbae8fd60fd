#!/usr/bin/env python3
"""The live page end to end: `flexmoe train --workers 2` prints its URL; the page, loaded in
headless Chromium during the job, shows the members, the heatmap and the curves, and a curve
point appears after a new epoch; /api/job and /metrics refuse requests without the page's
token; /metrics passes promtool. The job is then stopped at a checkpoint (SIGTERM), and
`flexmoe serve` on its run directory: its /metrics values equal those computed from
metrics.jsonl and job.json, its page loads, and a failed run's page names the culprit.

usage: live_view_test.py FLEXMOE SOURCE_DIR SCREENSHOT.png
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

FLEXMOE, SOURCE, SCREENSHOT = sys.argv[1], sys.argv[2], sys.argv[3]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMP_WAIT_POLICY="PASSIVE")


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def wait_for(what, condition, timeout_s):
    """Polls `condition` until it returns something true, for at most timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    fail("timed out after %d s waiting for %s" % (timeout_s, what))


def get(url, token=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError) as e:
        fail("GET %s: %s" % (url, e))


def chromium(url, screenshot=None):
    """The page's DOM after its scripts ran for a few (virtual) seconds."""
    args = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
            "--user-data-dir=" + tempfile.mkdtemp(), "--virtual-time-budget=3000",
            "--window-size=1280,1500"]
    if screenshot:
        subprocess.run(args + ["--screenshot=" + screenshot, url], capture_output=True,
                       timeout=120)
    out = subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    return out.stdout


def page_counts(dom):
    return {
        "members": len(re.findall(r'<tr [^>]*data-role="', dom)),
        "loss_points": len(re.findall(r'<circle [^>]*class="point"[^>]*data-series="train_loss"', dom)),
        "cells": len(re.findall(r'<rect [^>]*class="cell"', dom)),
        "bars": len(re.findall(r'<g [^>]*class="worker-bar', dom)),
    }


def metrics_samples(text):
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def check_promtool(text):
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    if out.returncode != 0 or out.stdout or out.stderr:
        fail("promtool check metrics: %s%s" % (out.stdout, out.stderr))


def live_job(t, common):
    run = os.path.join(t, "run")
    out_path = os.path.join(t, "train.out")
    with open(out_path, "w") as out:
        job = subprocess.Popen([FLEXMOE, "train", "--workers", "2", "--threads", "1"] + common +
                               ["--set", "training.epochs=200", "--set", "run.dir=" + run],
                               stdout=out, stderr=subprocess.STDOUT, env=ENV,
                               start_new_session=True)
    try:
        url = wait_for("the live page's URL", lambda: re.search(
            r"live page: (http://\S+)", open(out_path).read()), 120).group(1)
        base, token = url.split("?token=")
        if not base.startswith("http://127.0.0.1:"):
            fail("not on loopback: " + url)
        # The token is required.
        for path in ("api/job", "metrics"):
            status, _ = get(base + path)
            if status != 401:
                fail("/%s without the token: %d, not 401" % (path, status))
        api = lambda: json.loads(get(base + "api/job", token)[1])
        first = wait_for("a finished epoch", lambda: api()["epochs"] and api(), 120)
        epochs = len(first["epochs"])
        dom = chromium(url)
        seen = page_counts(dom)
        print("page during the job:", seen, "epochs", epochs, flush=True)
        if seen["members"] != 3 or seen["cells"] == 0 or seen["bars"] != 2:
            fail("the page lacks members, heatmap cells or step bars: %s\n%s" % (seen, dom[-3000:]))
        if seen["loss_points"] < epochs:
            fail("the page shows %d loss points for %d epochs" % (seen["loss_points"], epochs))
        wait_for("the next epoch", lambda: len(api()["epochs"]) > seen["loss_points"], 120)
        later = page_counts(chromium(url, SCREENSHOT))
        print("page one epoch later:", later, flush=True)
        if later["loss_points"] <= seen["loss_points"]:
            fail("no new curve point after a new epoch: %s then %s" % (seen, later))
        status, text = get(base + "metrics", token)
        if status != 200:
            fail("/metrics: %d" % status)
        check_promtool(text)
        # Done with the live job: stop it at a checkpoint (what Ctrl-C does), exit 0.
        job.send_signal(signal.SIGTERM)
        if job.wait(timeout=300) != 0:
            fail("the job did not stop cleanly:\n" + open(out_path).read()[-3000:])
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    return run


def expected_metrics(run):
    """The /metrics values of a finished run, from metrics.jsonl and job.json."""
    steps, epochs = [], []
    for line in open(os.path.join(run, "metrics.jsonl")):
        r = json.loads(line)
        if r["event"] == "step":
            steps.append(r)
        elif r["event"] == "epoch":
            epochs.append(r)
    tokens = {}
    for s in steps:
        t = s["tokens"]
        for layer, counts in zip(t["layers"], t["counts"]):
            for e in range(t["experts"]):
                key = 'flexmoe_expert_tokens_total{layer="%d",expert="%d"}' % (layer, e)
                tokens[key] = tokens.get(key, 0) + sum(
                    counts[e * t["combinations"]:(e + 1) * t["combinations"]])
    job = json.load(open(os.path.join(run, "job.json")))
    want = dict(tokens)
    want["flexmoe_samples_total"] = sum(s["samples"] for s in steps)
    want["flexmoe_global_step"] = steps[-1]["global_step"]
    want["flexmoe_epoch"] = steps[-1]["epoch"] + 1
    want["flexmoe_train_loss"] = steps[-1]["loss"]
    want["flexmoe_expert_imbalance"] = epochs[-1]["expert_imbalance"]
    want['flexmoe_validation_score{metric="acc"}'] = epochs[-1]["validation"]["acc"]
    want["flexmoe_checkpoint_newest_step"] = int(job["newest_checkpoint"].rsplit("-", 1)[1])
    want["flexmoe_restarts"] = 0
    want['flexmoe_job_info{job_id="%s",state="preempted"}' % job["job_id"]] = 1
    return want, len(epochs)


def serve_finished(run):
    out_path = run + ".serve.out"
    with open(out_path, "w") as out:
        serve = subprocess.Popen([FLEXMOE, "serve", run], stdout=out, stderr=subprocess.STDOUT)
    try:
        url = wait_for("serve's URL", lambda: re.search(r"on (http://\S+)", open(out_path).read()),
                       60).group(1)
        base, token = url.split("?token=")
        if get(base + "metrics")[0] != 401:
            fail("serve: /metrics without the token is not refused")
        status, text = get(base + "metrics", token)
        check_promtool(text)
        have = metrics_samples(text)
        want, epochs = expected_metrics(run)
        for name, value in want.items():
            if name not in have or abs(have[name] - value) > 1e-9 * max(1.0, abs(value)):
                fail("serve /metrics %s = %s, metrics.jsonl says %s" % (name, have.get(name), value))
        counts = page_counts(chromium(url))
        print("page of the finished run:", counts, flush=True)
        if counts["members"] != 3 or counts["loss_points"] != epochs or counts["cells"] == 0:
            fail("serve's page: %s" % counts)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)


def serve_failed(run, t):
    """A failed run's page names the culprit and the reason (job.json as a coordinator
    writes it for a job whose worker died)."""
    failed = os.path.join(t, "failed")
    os.makedirs(failed)
    job = json.load(open(os.path.join(run, "job.json")))
    job.update(state="failed", reason="worker 1 (host vm, pid 4242) died: killed by signal 9",
               culprit={"role": "worker", "rank": 1, "host": "vm", "port": 0, "pid": 4242})
    json.dump(job, open(os.path.join(failed, "job.json"), "w"))
    subprocess.run(["cp", os.path.join(run, "metrics.jsonl"), failed], check=True)
    out_path = failed + ".serve.out"
    with open(out_path, "w") as out:
        serve = subprocess.Popen([FLEXMOE, "serve", failed, "--no-token"], stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        url = wait_for("serve's URL", lambda: re.search(r"on (http://\S+)", open(out_path).read()),
                       60).group(1)
        dom = chromium(url)
        section = re.search(r'<section id="failure"[^>]*>', dom)
        if not section or "hidden" in section.group(0):
            fail("a failed run's page hides the failure: %s" % (section and section.group(0)))
        if "worker 1 on vm (pid 4242)" not in dom or "killed by signal 9" not in dom:
            fail("a failed run's page does not name the culprit and the reason")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)


def main():
    with tempfile.TemporaryDirectory() as t:
        common = ["--config", os.path.join(SOURCE, "configs/quickstart.textproto"),
                  "--set", "data.input=" + t + "/raw", "--set", "data.prepared_dir=" + t + "/prepared",
                  "--set", "synth.num_samples=3000", "--set", "training.batch_size=16",
                  "--set", "metrics.log_every_steps=10"]
        for command in ("synth", "prepare"):
            subprocess.run([FLEXMOE, command] + common, check=True, capture_output=True, env=ENV)
        run = live_job(t, common)
        serve_finished(run)
        serve_failed(run, t)
    print("live view: all checks passed; screenshot " + SCREENSHOT)


if __name__ == "__main__":
    main()
