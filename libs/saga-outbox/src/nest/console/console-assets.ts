/**
 * The console's stylesheet and script, shipped in the package as constants and served by the
 * console itself (`<path>/assets/…`): no CDN, no build step, works offline. The script only
 * enhances: every page works without it (the relay page then refreshes by `<meta refresh>`).
 */
export const CONSOLE_CSS = `
:root { --fg:#1d2330; --muted:#5d6778; --line:#d8dde6; --bg:#f6f7f9; --card:#fff; --accent:#2456c7;
  --ok:#1e7f4f; --warn:#a86500; --bad:#b3261e; --comp:#6b4fbb; --run:#2456c7; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header.top { display:flex; gap:24px; align-items:center; padding:10px 20px; background:#1d2330; color:#fff; }
header.top a { color:#dfe6f5; text-decoration:none; }
header.top a.current { color:#fff; font-weight:600; border-bottom:2px solid #7aa2ff; }
header.top .brand { font-weight:700; letter-spacing:.5px; }
header.top .who { margin-left:auto; color:#b9c3d6; font-size:12px; }
main { padding:16px 20px 40px; max-width:1400px; }
h1 { font-size:20px; margin:4px 0 12px; } h2 { font-size:16px; margin:22px 0 8px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; margin:10px 0; overflow-x:auto; }
table { border-collapse:collapse; width:100%; } th,td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; } td.num { text-align:right; font-variant-numeric:tabular-nums; }
code, .mono, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
.badge { display:inline-block; padding:1px 7px; border-radius:10px; font-size:12px; background:#e8ebf1; }
.badge.completed { background:#dff3e8; color:var(--ok); } .badge.failed,.badge.dead_letter { background:#fbe3e1; color:var(--bad); }
.badge.compensated,.badge.compensating { background:#ece6fa; color:var(--comp); } .badge.running,.badge.waiting { background:#e2eafb; color:var(--run); }
.counts { display:flex; gap:8px; flex-wrap:wrap; margin:6px 0 10px; } .counts a { text-decoration:none; color:inherit; }
.counts .c { display:inline-block; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:6px 10px; } .counts .c b { display:block; font-size:18px; }
form.filters { display:flex; gap:10px; flex-wrap:wrap; align-items:end; } form.filters label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
input,select,button { font:inherit; padding:4px 7px; border:1px solid var(--line); border-radius:5px; background:#fff; }
button { cursor:pointer; } button.primary { background:var(--accent); color:#fff; border-color:var(--accent); } button.danger { background:var(--bad); color:#fff; border-color:var(--bad); }
.warning { background:#fff4df; border:1px solid #f0c36d; color:#6d4600; padding:8px 12px; border-radius:6px; margin:10px 0; }
.notice { background:#e7f5ec; border:1px solid #9fd3b3; color:#17512f; padding:8px 12px; border-radius:6px; margin:10px 0; }
.error { color:var(--bad); } .muted { color:var(--muted); } .pager { display:flex; gap:14px; margin-top:10px; }
dl.fields { display:grid; grid-template-columns: max-content 1fr; gap:4px 16px; margin:0; } dl.fields dt { color:var(--muted); }
pre.json { margin:0; white-space:pre-wrap; word-break:break-word; } pre.json .k { color:#7a3e9d; } pre.json .s { color:#1e6b3a; } pre.json .n { color:#2456c7; }
.sealed { background:#fff1c9; border:1px solid #e2c46b; border-radius:4px; padding:0 5px; color:#6d4600; } .elided { color:var(--muted); font-style:italic; }
svg.graph .edge { fill:none; stroke:#8a94a6; stroke-width:1.5; } svg.graph marker path { fill:#8a94a6; }
svg.graph rect { fill:#f1f3f7; stroke:#9aa4b5; stroke-width:1.5; } svg.graph text { font-size:12px; fill:var(--fg); } svg.graph text.status { font-size:11px; fill:var(--muted); }
svg.graph .st-completed rect { fill:#dff3e8; stroke:var(--ok); } svg.graph .st-failed rect, svg.graph .st-compensation-failed rect { fill:#fbe3e1; stroke:var(--bad); }
svg.graph .st-compensated rect, svg.graph .st-compensating rect { fill:#ece6fa; stroke:var(--comp); } svg.graph .st-running rect, svg.graph .st-waiting-for-reply rect { fill:#e2eafb; stroke:var(--run); stroke-dasharray:4 2; }
svg.graph .st-timed-out rect { fill:#fff1c9; stroke:var(--warn); }
ol.timeline { list-style:none; padding:0; margin:0; } ol.timeline li { padding:4px 0 4px 14px; border-left:2px solid var(--line); margin-left:6px; }
ol.timeline li.bad { border-color:var(--bad); } ol.timeline li.comp { border-color:var(--comp); } ol.timeline li.ok { border-color:var(--ok); }
.refresh { font-size:12px; color:var(--muted); }
`;

export const CONSOLE_JS = `'use strict';
// Sage console: progressive enhancement only. Forms with data-confirm ask once more in the browser
// (the server's confirmation step stays); a page with data-refresh reloads itself unless paused.
document.addEventListener('submit', function (event) {
  var form = event.target;
  var message = form && form.getAttribute && form.getAttribute('data-confirm');
  if (message && !window.confirm(message)) event.preventDefault();
});
(function () {
  var seconds = Number(document.body.getAttribute('data-refresh') || 0);
  var box = document.getElementById('pause-refresh');
  if (!seconds) return;
  var paused = window.sessionStorage && sessionStorage.getItem('sage-console-paused') === '1';
  if (box) {
    box.hidden = false;
    var input = box.querySelector('input');
    input.checked = paused;
    input.addEventListener('change', function () {
      paused = input.checked;
      if (window.sessionStorage) sessionStorage.setItem('sage-console-paused', paused ? '1' : '0');
    });
  }
  setTimeout(function tick() {
    if (paused) return setTimeout(tick, 1000);
    window.location.reload();
  }, seconds * 1000);
})();
`;
