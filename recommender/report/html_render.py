"""The self-contained HTML page of ``netpol report``: inline CSS, JS and SVG, no network.

Tables sort on a header click and filter on typed text (a few lines of vanilla
JS below); a namespace selector switches between the whole graph and one
namespace's. Everything is escaped; the page depends only on its input, so
equal input gives byte-equal HTML.
"""

from __future__ import annotations

from html import escape

from recommender.report.html_model import PolicyView, ReportData, Table

CSS = """
body{font:14px/1.4 system-ui,Helvetica,Arial,sans-serif;margin:0 24px 48px;color:#212121}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:12px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f5f5f5;cursor:pointer;user-select:none}th.asc:after{content:" \\25B2"}
th.desc:after{content:" \\25BC"}tr:target,section:target{background:#fff3cd}
.graph{overflow:auto;border:1px solid #ddd;padding:8px;max-height:80vh}
.legend span{display:inline-block;margin-right:16px}.ok{color:#2e7d32}.deny{color:#c62828}
.new{color:#1565c0}input.filter{margin:4px 0;padding:3px;width:320px}
pre{background:#f8f8f8;padding:8px;overflow:auto;font-size:12px}
"""

JS = """
function cellValue(row,i){var t=row.cells[i].textContent.trim();var n=parseFloat(t);
 return (t!==''&&!isNaN(n)&&isFinite(t))?n:t.toLowerCase();}
function sortTable(th){var table=th.closest('table');var i=th.cellIndex;
 var asc=!th.classList.contains('asc');
 table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
 th.classList.add(asc?'asc':'desc');var body=table.tBodies[0];
 var rows=Array.prototype.slice.call(body.rows);
 rows.sort(function(a,b){var x=cellValue(a,i),y=cellValue(b,i);
  if(typeof x!==typeof y){x=String(x);y=String(y);}
  return (x<y?-1:x>y?1:0)*(asc?1:-1);});
 rows.forEach(function(r){body.appendChild(r);});}
function filterTable(input){var q=input.value.toLowerCase();
 var table=document.getElementById(input.dataset.table);
 Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
  r.hidden=q!==''&&r.textContent.toLowerCase().indexOf(q)<0;});}
function showGraph(ns){document.querySelectorAll('.graph').forEach(function(g){
  g.hidden=g.dataset.ns!==ns;});}
document.addEventListener('DOMContentLoaded',function(){
 document.querySelectorAll('th').forEach(function(th){
  th.addEventListener('click',function(){sortTable(th);});});
 document.querySelectorAll('input.filter').forEach(function(inp){
  inp.addEventListener('input',function(){filterTable(inp);});});
 var sel=document.getElementById('graph-ns');
 if(sel){sel.addEventListener('change',function(){showGraph(sel.value);});}});
"""


def render_html(data: ReportData, graphs: dict[str, str]) -> str:
    """The page; ``graphs`` maps "" (every namespace) and each namespace to inline SVG."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(data.title)}</title><style>{CSS}</style><script>{JS}</script>",
        f"</head><body><h1>{escape(data.title)}</h1>",
        _facts(data),
        _graphs(graphs),
        *(_table(t) for t in data.tables),
        _policies(data.policies),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _facts(data: ReportData) -> str:
    rows = [("source", s) for s in data.sources] + list(data.facts)
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table id="facts">{body}</table>'


def _graphs(graphs: dict[str, str]) -> str:
    options = "".join(
        f'<option value="{escape(ns)}">{escape(ns or "all namespaces")}</option>'
        for ns in sorted(graphs)
    )
    legend = (
        '<p class="legend"><span class="ok">&#9472; allowed (ports on the edge)</span>'
        '<span class="deny">&#9476; would be denied / newly denied (click for why)</span>'
        '<span class="new">&#9473; newly allowed</span></p>'
    )
    blocks = "".join(
        f'<div class="graph" data-ns="{escape(ns)}"{" hidden" if ns else ""}>{svg}</div>'
        for ns, svg in sorted(graphs.items())
    )
    return (
        '<h2 id="graph">Communication graph</h2>'
        f'<label>Namespace <select id="graph-ns">{options}</select></label>{legend}{blocks}'
    )


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    rows = "".join(
        (f'<tr id="{escape(a)}">' if a else "<tr>")
        + "".join(f"<td>{escape(v)}</td>" for v in row)
        + "</tr>"
        for row, a in zip(table.rows, table.anchors, strict=True)
    )
    tid = escape(f"table-{table.id}")
    return (
        f'<h2 id="section-{escape(table.id)}">{escape(table.title)} ({len(table.rows)})</h2>'
        f'<input class="filter" data-table="{tid}" placeholder="filter rows">'
        f'<table id="{tid}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
    )


def _policies(policies: list[PolicyView]) -> str:
    if not policies:
        return ""
    return '<h2 id="policies">Policies and their evidence</h2>' + "".join(
        f'<section id="{escape(p.anchor)}"><h3>{escape(p.key)}</h3>'
        + "".join(f"<div><b>{escape(k)}</b>: {escape(v)}</div>" for k, v in p.evidence)
        + "<ul>"
        + "".join(f"<li>{escape(r)}</li>" for r in p.rules)
        + f"</ul><details><summary>YAML</summary><pre>{escape(p.yaml)}</pre></details></section>"
        for p in policies
    )
