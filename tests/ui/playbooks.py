"""The playbooks the UI tests run (each small, with sleeps long enough to watch a step change)."""

from __future__ import annotations

STEPS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: ui_steps
  path: ui/steps
  description: Four steps one after another, and a loop
workload:
  pause: 0.8
  cities: [Paris, Oslo, Rome]
workflow:
  - step: start
    tool: {kind: shell, command: "sleep {{ workload.pause }}; echo started"}
    next: greet
  - step: greet
    loop: {in: "{{ workload.cities }}", iterator: city, spec: {mode: sequential}}
    tool: {kind: shell, command: "sleep 0.3; echo hello {{ city }}"}
    next:
      - step: check
        when: "{{ greet | length == 3 }}"
  - step: check
    tool: {kind: shell, command: "sleep {{ workload.pause }}; echo checked"}
    next: end
  - step: end
    tool: {kind: shell, command: "sleep {{ workload.pause }}; echo done"}
"""

FAILS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: ui_fails
  path: ui/fails
  description: Its second step fails
workflow:
  - step: start
    next: explode
  - step: explode
    tool:
      kind: python
      code: |
        raise ValueError("the disk is full at /data (42 bytes left)")
    next: end
  - step: end
"""

SLEEPS = """
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: ui_sleeps
  path: ui/sleeps
  description: A step that sleeps for a minute, then another
workflow:
  - step: start
    tool: {kind: shell, command: "sleep 60"}
    next: after
  - step: after
"""

# Markup in a step's output, in a description and in a step's desc: shown as text, never run.
SCRIPT = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"
INJECTS = f"""
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: ui_injects
  path: ui/injects
  description: "{SCRIPT}"
workflow:
  - step: start
    desc: "{SCRIPT}"
    tool:
      kind: python
      code: |
        result = {{"html": "{SCRIPT}"}}
"""

# No tool: the engine finishes it at once, no worker needed (many of them fill the list fast).
NOOP = """
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: ui_noop
  path: ui/noop
  description: Ends at once
workflow:
  - step: start
"""
