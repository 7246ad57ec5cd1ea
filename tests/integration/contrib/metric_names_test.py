#!/usr/bin/python3
# The Grafana dashboard (contrib/grafana/mxguard.json) and the Prometheus rules
# (contrib/prometheus/mxguard-rules.yml) may use only metric names, and label names in
# selectors and `by (...)`, that a daemon exports, so neither can drift from the code. The
# exported set is read from the registration calls in the source (`counter("mxguard_…"`,
# `gauge(…`, `histogram(…` with their `{"label", …}` pairs; a histogram gives _bucket, _sum
# and _count), and that reading is checked against a real scrape of mxguard-policyd and a real
# metrics file of mxguard-dmarc-report. Also: every exported metric has a dashboard panel, the
# dashboard's panels use the ${DS_PROMETHEUS} variable, every rule has a severity and a
# summary, and `promtool check rules` passes when promtool is installed (it is not a test
# dependency: Debian ships it only inside the prometheus server package).
#
# Usage: metric_names_test.py SOURCE_DIR BINARY_DIR      (ctest: integration.contrib_metric_names)
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

SOURCE_DIRS = ("common", "milters", "policyd")
DASHBOARD = "contrib/grafana/mxguard.json"
RULES = "contrib/prometheus/mxguard-rules.yml"
# Labels Prometheus adds to every scraped series, and the bucket label of histograms.
TARGET_LABELS = {"job", "instance"}

REGISTRATION = re.compile(r'\b(counter|gauge|histogram)\(\s*"(mxguard_[a-z0-9_]+)"')
LITERAL = re.compile(r'"(mxguard_[a-z0-9_]+)"')
LABEL_PAIR = re.compile(r'\{\s*"([a-z_][a-z0-9_]*)"\s*,')
NAME = re.compile(r"\bmxguard_[a-z0-9_]+")
SELECTOR = re.compile(r"\b(mxguard_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")

failures = []


def fail(message):
    failures.append(message)
    print("FAIL: " + message)


def exported_metrics(source):
    """name -> {"kind", "labels", "where"} from the registration calls in the source."""
    metrics = {}
    literals = {}
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(source, top)):
            for f in files:
                if not f.endswith((".cc", ".h")):
                    continue
                path = os.path.join(dirpath, f)
                text = open(path, encoding="utf-8").read()
                rel = os.path.relpath(path, source)
                for m in LITERAL.finditer(text):
                    literals.setdefault(m.group(1), rel)
                matches = list(REGISTRATION.finditer(text))
                for i, m in enumerate(matches):
                    # The call's arguments: up to its statement's end or the next registration.
                    end = text.find(";", m.end())
                    if i + 1 < len(matches):
                        end = min(end, matches[i + 1].start())
                    kind, name = m.group(1), m.group(2)
                    labels = set(LABEL_PAIR.findall(text[m.end():end]))
                    entry = metrics.setdefault(name, {"kind": kind, "labels": set(), "where": rel})
                    if entry["kind"] != kind:
                        fail(f"{name} is a {entry['kind']} in {entry['where']} and a {kind} in {rel}")
                    entry["labels"] |= labels
    for name, where in sorted(literals.items()):
        if name not in metrics:
            fail(f"{where}: the metric name {name} is not in a counter(/gauge(/histogram( call "
                 "this test can read; register it that way or teach the test")
    return metrics


def series_names(metrics):
    """Every series name a scrape can show -> the label names it may carry."""
    series = {}
    for name, m in metrics.items():
        if m["kind"] == "histogram":
            series[name + "_bucket"] = m["labels"] | {"le"}
            series[name + "_sum"] = set(m["labels"])
            series[name + "_count"] = set(m["labels"])
        else:
            series[name] = set(m["labels"])
    return series


def check_expr(where, expr, series):
    names = set(NAME.findall(expr))
    for name in sorted(names):
        if name not in series:
            fail(f"{where}: {name} is not exported by any daemon (expr: {expr.strip()})")
    for name, inner in SELECTOR.findall(expr):
        for label in MATCHER.findall(inner):
            if name in series and label not in series[name] | TARGET_LABELS:
                fail(f"{where}: {name} has no label {label!r} (it has {sorted(series[name])})")
    known = set().union(*(series.get(n, set()) for n in names)) | TARGET_LABELS | {"le"}
    if names:
        for group in GROUPING.findall(expr):
            for label in (l.strip() for l in group.split(",")):
                if label and label not in known:
                    fail(f"{where}: groups by {label!r}, a label none of {sorted(names)} has")
    return names


def dashboard_exprs(source):
    d = json.load(open(os.path.join(source, DASHBOARD), encoding="utf-8"))
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("DS_PROMETHEUS")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        fail(f"{DASHBOARD}: no datasource variable DS_PROMETHEUS of type prometheus")
    exprs = []

    def walk_panels(panels):
        for p in panels:
            if p.get("type") == "row":
                walk_panels(p.get("panels", []))
                continue
            title = p.get("title", "?")
            if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
                fail(f"{DASHBOARD}: panel {title!r} does not use ${{DS_PROMETHEUS}}")
            if not p.get("targets"):
                fail(f"{DASHBOARD}: panel {title!r} has no query")
            for t in p.get("targets", []):
                exprs.append((f"{DASHBOARD}: panel {title!r}", t.get("expr", "")))

    walk_panels(d.get("panels", []))
    for v in variables.values():
        q = v.get("query")
        if v.get("type") == "query":
            exprs.append((f"{DASHBOARD}: variable {v['name']}",
                          q.get("query", "") if isinstance(q, dict) else q or ""))
    return exprs


def rules_exprs(source):
    doc = yaml.safe_load(open(os.path.join(source, RULES), encoding="utf-8"))
    exprs = []
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record") or "?"
            if "alert" in rule:
                if not rule.get("labels", {}).get("severity"):
                    fail(f"{RULES}: {name} has no severity label")
                if not rule.get("annotations", {}).get("summary"):
                    fail(f"{RULES}: {name} has no summary")
            exprs.append((f"{RULES}: {name}", str(rule.get("expr", ""))))
    if not exprs:
        fail(f"{RULES}: no rules")
    return exprs


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def check_scrape(text, where, series):
    seen = 0
    for line in text.splitlines():
        if not line.startswith("mxguard_"):
            continue
        name = re.match(r"[a-z0-9_]+", line).group(0)
        labels = set(re.findall(r'([a-z_][a-z0-9_]*)="', line[len(name):].split("}")[0]))
        seen += 1
        if name not in series:
            fail(f"{where}: {name} is served but this test did not find it in the source")
        elif not labels <= series[name]:
            fail(f"{where}: {name} carries labels {sorted(labels - series[name])} the source "
                 "reading missed")
    return seen


def scrape_policyd(binary_dir, series):
    """A real mxguard-policyd: its scrape holds only names and labels read from the source."""
    tmp = tempfile.mkdtemp(prefix="mxguard-metric-names-")
    port, metrics_port = free_port(), free_port()
    conf = os.path.join(tmp, "policyd.conf")
    with open(conf, "w") as f:
        f.write(f"listen = inet:127.0.0.1:{port}\nmetrics-listen = inet:127.0.0.1:{metrics_port}\n"
                "checks = spf\ngreylist-whitelist-clients = /dev/null\n"
                "greylist-whitelist-recipients = /dev/null\n")
    log = open(os.path.join(tmp, "policyd.log"), "w+")
    daemon = subprocess.Popen([os.path.join(binary_dir, "policyd/mxguard-policyd"), "-c", conf,
                               "--foreground", "--log-target", "stderr"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    # One request from a trusted client: a decision and a latency observation.
                    s.sendall(b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
                              b"client_address=127.0.0.1\nsender=a@example.org\n"
                              b"recipient=b@example.net\n\n")
                    s.recv(4096)
                break
            except OSError:
                time.sleep(0.05)
        status, health = 0, ""
        for _ in range(50):
            status, health = http_get(metrics_port, "/healthz")
            if status == 200:
                break
            time.sleep(0.05)
        if (status, health) != (200, "ok\n"):
            fail(f"mxguard-policyd /healthz: {status} {health!r}")
        status, text = http_get(metrics_port, "/metrics")
        n = check_scrape(text, "mxguard-policyd /metrics", series)
        if status != 200 or n < 5:
            fail(f"mxguard-policyd /metrics: status {status}, {n} mxguard series")
        else:
            print(f"ok: mxguard-policyd serves {n} series, all known")
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        log.seek(0)
        if failures:
            print("mxguard-policyd log:\n" + log.read())
        log.close()
        shutil.rmtree(tmp)


def report_metrics_file(binary_dir, series):
    """mxguard-dmarc-report --metrics-file, with Redis unreachable: exit 1, and it says so."""
    tmp = tempfile.mkdtemp(prefix="mxguard-metric-names-")
    out = os.path.join(tmp, "mxguard-dmarc-report.prom")
    try:
        r = subprocess.run([os.path.join(binary_dir, "milters/dmarc/mxguard-dmarc-report"),
                            "-c", "/dev/null", "--redis-url", f"redis://127.0.0.1:{free_port()}/0",
                            "--metrics-file", out], capture_output=True, text=True, timeout=30)
        text = open(out).read() if os.path.exists(out) else ""
        if r.returncode != 1 or "mxguard_dmarc_report_last_run_exit_code 1\n" not in text:
            fail(f"mxguard-dmarc-report: exit {r.returncode}, metrics file {text!r}, "
                 f"output {r.stdout + r.stderr!r}")
        n = check_scrape(text, "mxguard-dmarc-report --metrics-file", series)
        if n:
            print(f"ok: mxguard-dmarc-report writes {n} series, all known")
        if os.path.exists(out + ".tmp"):
            fail("mxguard-dmarc-report left its temporary metrics file behind")
    finally:
        shutil.rmtree(tmp)


def promtool(source):
    tool = shutil.which("promtool")
    if not tool:
        print("skipped: promtool check rules (promtool is not installed; Debian ships it in "
              "the prometheus package)")
        return
    r = subprocess.run([tool, "check", "rules", os.path.join(source, RULES)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail("promtool check rules:\n" + r.stdout + r.stderr)
    else:
        print("ok: promtool check rules: " + r.stdout.strip().replace("\n", " "))


def main():
    source, binary_dir = sys.argv[1], sys.argv[2]
    metrics = exported_metrics(source)
    series = series_names(metrics)
    print(f"ok: {len(metrics)} metrics registered in the source")
    used = set()
    exprs = dashboard_exprs(source) + rules_exprs(source)
    for where, expr in exprs:
        used |= check_expr(where, expr, series)
    # Names in titles, descriptions and annotations must be real too.
    for path in (DASHBOARD, RULES):
        for name in sorted(set(NAME.findall(open(os.path.join(source, path)).read()))):
            if name not in series and name not in metrics:
                fail(f"{path}: mentions {name}, which no daemon exports")
    print(f"ok: {len(exprs)} expressions checked, {len(used)} series names used")
    dashboard_text = open(os.path.join(source, DASHBOARD)).read()
    for name in sorted(metrics):
        if not re.search(r"\b" + name + r"(_bucket|_sum|_count)?\b", dashboard_text):
            fail(f"{DASHBOARD}: no panel shows {name} ({metrics[name]['where']})")
    scrape_policyd(binary_dir, series)
    report_metrics_file(binary_dir, series)
    promtool(source)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
