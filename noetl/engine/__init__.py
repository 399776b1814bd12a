"""The playbook engine: pure logic, no I/O.

``playbook`` parses and validates a NoETL v2 playbook, ``templates`` renders its Jinja2 templates in
a sandbox with NoETL's context rules, ``state`` holds an execution's state and ``decide`` turns
(playbook, state, event) into decisions that the server applies in one transaction.
"""
