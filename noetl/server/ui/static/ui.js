// noetl UI: the little the server-rendered pages need in the browser. Every text that comes from
// the server as data is set with textContent; HTML is only ever the server's own escaped fragments.
"use strict";

(function () {
  const REFRESH_MS = 3000;

  function refreshList(table) {
    const url = table.getAttribute("data-refresh");
    const body = table.tBodies[0];
    setInterval(async function () {
      if (document.hidden) return;
      try {
        const answer = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (answer.ok) body.innerHTML = await answer.text();
      } catch (err) {
        // The server is restarting or unreachable: keep what is shown and try again later.
      }
    }, REFRESH_MS);
  }

  function setBadge(holder, status) {
    const badge = holder.querySelector(".badge");
    if (!badge) return;
    badge.textContent = status;
    badge.className = "badge s-" + status.toLowerCase();
  }

  function executionPage(section) {
    const id = section.getAttribute("data-id");
    const nodes = new Map();
    section.querySelectorAll("g.node").forEach(function (node) {
      nodes.set(node.getAttribute("data-step"), node);
    });
    const detail = document.getElementById("detail");
    const events = document.getElementById("events");
    const filters = document.getElementById("event-filters");
    let selected = null;

    async function showStep(name) {
      selected = name;
      nodes.forEach(function (node, key) { node.classList.toggle("selected", key === name); });
      const answer = await fetch("/ui/executions/" + id + "/steps/" + encodeURIComponent(name), {
        credentials: "same-origin",
      });
      if (answer.ok && selected === name) detail.innerHTML = await answer.text();
    }

    nodes.forEach(function (node, name) {
      node.addEventListener("click", function () { showStep(name); });
      node.addEventListener("keydown", function (ev) { if (ev.key === "Enter") showStep(name); });
    });

    function matches(row) {
      if (!filters) return true;
      const type = filters.elements.type.value;
      const step = filters.elements.step.value;
      return (!type || row.getAttribute("data-type") === type) && (!step || row.getAttribute("data-step") === step);
    }

    function applyFilters() {
      if (!events) return;
      Array.from(events.tBodies[0].rows).forEach(function (row) { row.hidden = !matches(row); });
    }
    if (filters) filters.addEventListener("change", applyFilters);

    const shown = new Set();
    if (events) {
      Array.from(events.tBodies[0].rows).forEach(function (row) { shown.add(Number(row.cells[0].textContent)); });
    }

    function addEvent(e) {
      if (!events || shown.has(e.event_id)) return;
      shown.add(e.event_id);
      // In id order: an event that committed late goes where it belongs.
      const rows = events.tBodies[0].rows;
      let at = rows.length;
      while (at > 0 && Number(rows[at - 1].cells[0].textContent) > e.event_id) at -= 1;
      const row = events.tBodies[0].insertRow(at);
      row.setAttribute("data-type", e.event_type);
      row.setAttribute("data-step", e.node_name || "");
      [String(e.event_id), e.created_at.replace("T", " ").slice(0, 19), e.event_type, e.node_name || "",
        e.status || "", e.error || e.result || ""].forEach(function (text, i) {
        const cell = row.insertCell(-1);
        cell.textContent = text;
        if (i === 5 && e.error) cell.className = "error-text";
      });
      row.hidden = !matches(row);
    }

    function update(data) {
      setBadge(document.getElementById("exec-status"), data.status);
      const error = document.getElementById("exec-error");
      if (error) {
        error.textContent = data.error || "";
        error.hidden = !data.error;
      }
      if (data.finished_at) {
        document.getElementById("exec-finished").textContent = data.finished_at.replace("T", " ").slice(0, 19);
      }
      let refreshSelected = false;
      data.steps.forEach(function (step) {
        const node = nodes.get(step.name);
        if (!node) return;
        if (node.getAttribute("data-status") !== step.status) {
          node.setAttribute("data-status", step.status);
          if (step.name === selected) refreshSelected = true;
        }
        node.querySelector(".state").textContent = step.status;
        const count = node.querySelector(".count");
        if (count && step.iterations) {
          count.textContent = step.iterations.done + "/" + step.iterations.total;
          if (step.name === selected) refreshSelected = true;
        }
      });
      data.events.forEach(addEvent);
      if (refreshSelected) showStep(selected);
    }

    const live = section.getAttribute("data-live");
    if (!live) return;
    const source = new EventSource(live);
    source.addEventListener("update", function (ev) { update(JSON.parse(ev.data)); });
    source.addEventListener("end", function (ev) {
      source.close();
      // A step that never ran by the end was not taken (another branch, or the run stopped).
      nodes.forEach(function (node) {
        if (node.getAttribute("data-status") === "pending") {
          node.setAttribute("data-status", "skipped");
          node.querySelector(".state").textContent = "skipped";
        }
      });
      setBadge(document.getElementById("exec-status"), JSON.parse(ev.data).status);
      const cancel = document.getElementById("cancel-form");
      if (cancel) cancel.hidden = true;
      section.setAttribute("data-ended", "true");
    });
    source.addEventListener("gone", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const list = document.querySelector("table[data-refresh]");
    if (list) refreshList(list);
    const section = document.getElementById("execution");
    if (section) executionPage(section);
  });
})();
