"""The explorers for the static book: HTML controls that work in a page with no Python behind it.

In a book build (:func:`maxpo.figures.viz.building_book`) an explorer displays
itself with the functions below instead of its ipywidgets, which would need a
kernel. Two kinds, both plain JavaScript over plotly.js (already on the page)
and numbers computed here by the package:

* :func:`grid_html` -- a precomputed grid. The live explorer itself is driven
  over every combination of a few control values; each state's figure,
  caption (or in-place error) is stored, and the page's sliders and menus
  show the stored state for their combination. The numbers are exactly the
  live explorer's.
* :func:`linear_html` -- rewards the reader drags. Every max@K advantage here
  is linear in the rewards once they are sorted: ``A_sorted = M r_sorted``
  with one ``B x B`` matrix ``M`` per method and K (a U-statistic is a fixed
  weighted sum of order statistics). :func:`sorted_linear_map` reads ``M``
  off the package (its advantages of the step vectors ``(0..0, 1..1)``) and
  checks it on random groups; the page sorts the dragged rewards, multiplies,
  and puts the advantages back in the reader's order. A method that is not
  linear this way (GRPO's division by the standard deviation) or refuses real
  rewards is left out of the menu.
"""
from __future__ import annotations

import html
import itertools
import json
import random
import uuid
from collections.abc import Sequence
from typing import Any

import plotly.io as pio
import torch

import maxpo
from maxpo.explorers import figures
from maxpo.explorers.base import Explorer, fmt
from maxpo.figures import viz

__all__ = ["Control", "grid_html", "linear_html", "sorted_linear_map"]

#: Relative agreement required between ``M r_sorted`` and the package before a method is offered.
LINEAR_TOLERANCE = 1e-9

_NOTE = ("<p class='mx-note'><small>Computed in advance by the <code>maxpo</code> package for the values the "
         "controls offer, and drawn in your browser: no server needed. To type any value, run this chapter "
         "live (<code>make lab</code>).</small></p>")
_LINEAR_NOTE = ("<p class='mx-note'><small>Computed in your browser from matrices the <code>maxpo</code> package "
                "worked out in advance: no server needed. To type any rewards, or to try the methods not offered "
                "here, run this chapter live (<code>make lab</code>).</small></p>")

_STYLE = """<style>
.mx-explorer{margin:0.5em 0 1em 0}
.mx-controls{display:flex;flex-wrap:wrap;gap:0.4em 1.4em;align-items:center;margin-bottom:0.3em}
.mx-controls label{display:inline-flex;flex-wrap:wrap;align-items:center;gap:0.2em 0.4em;white-space:nowrap;
  max-width:100%}
.mx-controls select{max-width:100%}
.mx-controls input[type=range]{width:9em}
.mx-controls output{min-width:3.2em;font-variant-numeric:tabular-nums}
.mx-caption p{margin:0.2em 0}
</style>"""


class Control:
    """One static control: the live explorer's attribute ``attr`` takes each of ``values``.

    ``kind`` is ``"slider"`` (an ``<input type=range>`` over the values, in
    order) or ``"menu"`` (a ``<select>``); ``labels`` are what the reader sees.
    """

    def __init__(self, attr: str, label: str, values: Sequence[Any], kind: str = "slider",
                 labels: Sequence[str] | None = None) -> None:
        if kind not in ("slider", "menu"):
            raise ValueError(f"unknown control kind {kind!r}")
        self.attr, self.label, self.values, self.kind = attr, label, list(values), kind
        self.labels = [str(v) for v in values] if labels is None else list(labels)

    def html(self, index: int, position: int) -> str:
        label = html.escape(self.label)
        if self.kind == "menu":
            options = "".join(f"<option value='{i}'{' selected' if i == index else ''}>{html.escape(t)}</option>"
                              for i, t in enumerate(self.labels))
            return f"<label>{label} <select data-mx='{position}'>{options}</select></label>"
        return (f"<label>{label} <input type='range' min='0' max='{len(self.values) - 1}' step='1' "
                f"value='{index}' data-mx='{position}'><output>{html.escape(self.labels[index])}</output></label>")


def _figure_json(fig: Any) -> dict[str, Any]:
    return json.loads(pio.to_json(fig, validate=False, remove_uids=True))


def _layout_patch(layout: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in layout.items() if base.get(k) != v}


def _wrap(body: str, data: dict[str, Any], script: str) -> str:
    ident = f"mx-{uuid.uuid4().hex[:12]}"
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return (f"{_STYLE}<div class='mx-explorer' id='{ident}'>{body}"
            f"<script type='application/json' class='mx-data'>{payload}</script>"
            f"<script>(function(){{var root=document.getElementById('{ident}');"
            f"var D=JSON.parse(root.querySelector('.mx-data').textContent);{script}}})();</script></div>")


_GRID_JS = """
var inputs=Array.prototype.slice.call(root.querySelectorAll('[data-mx]'));
var plot=root.querySelector('.mx-plot'), caption=root.querySelector('.mx-caption'), narrow=null;
function setPath(o,path,v){var parts=path.replace(/\\[(\\d+)\\]/g,'.$1').split('.');
  for(var i=0;i<parts.length-1;i++){var p=parts[i];
    if(o[p]==null){o[p]=/^\\d+$/.test(parts[i+1])?[]:{};}o=o[p];}
  o[parts[parts.length-1]]=v;}
function fit(layout){
  var n=layout.meta&&layout.meta.mx_narrow;
  narrow=!!n&&root.clientWidth<n.below;
  if(!narrow){plot.style.height=(layout.height||D.height)+'px';return layout;}
  layout=JSON.parse(JSON.stringify(layout));
  Object.keys(n.set).forEach(function(path){setPath(layout,path,n.set[path]);});
  layout.height=n.height;plot.style.height=n.height+'px';
  return layout;
}
function show(){
  var key=inputs.map(function(el){return el.value;}).join(',');
  inputs.forEach(function(el){var out=el.parentNode.querySelector('output');
    if(out){out.textContent=D.labels[+el.getAttribute('data-mx')][+el.value];}});
  var f=D.frames[key];
  plot.setAttribute('data-mx-key',key);
  caption.innerHTML=f.caption;
  if(f.data===null){plot.style.display='none';Plotly.purge(plot);return;}
  plot.style.display='';
  var layout=fit(Object.assign({},D.layout,f.layout));
  plot.mxDrawn=Plotly.react(plot,f.data,layout,D.config);
}
inputs.forEach(function(el){el.addEventListener('input',show);el.addEventListener('change',show);});
window.addEventListener('resize',function(){var was=narrow;fit(D.layout);if(narrow!==was){show();}});
show();
"""


def grid_html(explorer: Explorer, controls: Sequence[Control]) -> str:
    """Drive ``explorer`` over every combination of the controls' values; the page shows the stored states.

    The explorer's current control values must be among each control's
    values (they are the page's starting state). Each state keeps the
    explorer's figure (its data and the layout keys that differ from the
    first state's) and its caption, or its in-place error with no figure.
    """
    start = []
    for c in controls:
        current = getattr(explorer, c.attr).value
        if current not in c.values:
            raise ValueError(f"{c.attr} = {current!r} is not among the static values {c.values}")
        start.append(c.values.index(current))
    frames: dict[str, dict[str, Any]] = {}
    base_layout: dict[str, Any] | None = None
    for combo in itertools.product(*(range(len(c.values)) for c in controls)):
        for c, i in zip(controls, combo):
            widget = getattr(explorer, c.attr)
            if widget.value != c.values[i]:
                widget.value = c.values[i]
        frame: dict[str, Any] = {"caption": explorer.message.value, "data": None}
        if explorer.figure is not None:
            fig = _figure_json(explorer.figure)
            if base_layout is None:
                base_layout = fig["layout"]
            frame["data"] = fig["data"]
            frame["layout"] = _layout_patch(fig["layout"], base_layout)
        frames[",".join(map(str, combo))] = frame
    for c, i in zip(controls, start):  # leave the explorer as it was
        getattr(explorer, c.attr).value = c.values[i]
    height = (base_layout or {}).get("height") or viz.DEFAULT_HEIGHT
    body = ("<div class='mx-controls'>" + "".join(c.html(i, p) for p, (c, i) in enumerate(zip(controls, start)))
            + "</div><div class='mx-caption'></div>"
            + f"<div class='mx-plot plotly-graph-div' style='height:{int(height)}px;width:100%'></div>" + _NOTE)
    data = {"frames": frames, "layout": base_layout or {}, "config": dict(viz.PLOTLY_CONFIG),
            "labels": [c.labels for c in controls], "height": int(height)}
    return _wrap(body, data, _GRID_JS)


# --------------------------------------------------------------------------- rewards the reader drags
def sorted_linear_map(method: str, b: int, k: int, checks: int = 20, seed: int = 0) -> list[list[float]]:
    """The matrix ``M`` with ``advantages(r)[order] = M @ sorted(r)`` for ``method`` at ``(B, K)``.

    Read off the package at the step vectors ``u_j = (0, .., 0, 1, .., 1)``
    (ones from position j; ``r_sorted = sum_j (r_(j) - r_(j-1)) u_j``), then
    checked against the package on ``checks`` random groups with distinct
    rewards in [0, 1]. Raises ``ValueError`` with the package's message if the
    method refuses ``(B, K)`` or real rewards, or if it is not linear this way.
    """
    steps = [[0.0] * j + [1.0] * (b - j) for j in range(b)]  # u_0 = all ones, ..., u_{b-1} = e_b
    cols = [maxpo.advantages(torch.tensor(u, dtype=torch.float64), k, method).tolist() for u in steps]
    # M u_j = cols[j]; with D the difference operator (r_sorted = U d), M = C U^-1: column i of M is
    # cols[i] - cols[i + 1] (and the last column is cols[b - 1]).
    m = [[cols[i][row] - (cols[i + 1][row] if i + 1 < b else 0.0) for i in range(b)] for row in range(b)]
    rng = random.Random(seed)
    for _ in range(checks):
        r = [rng.random() for _ in range(b)]
        got = maxpo.advantages(torch.tensor(r, dtype=torch.float64), k, method).tolist()
        order = sorted(range(b), key=lambda i: r[i])
        rs = [r[i] for i in order]
        for pos, i in enumerate(order):
            want = sum(m[pos][j] * rs[j] for j in range(b))
            if abs(want - got[i]) > LINEAR_TOLERANCE * max(1.0, abs(got[i])):
                raise ValueError(f"{method} is not linear in the sorted rewards")
    return m


_LINEAR_JS = """
var sliders=Array.prototype.slice.call(root.querySelectorAll('input[data-mx-r]'));
var kIn=root.querySelector('input[data-mx-k]'), mIn=root.querySelector('select[data-mx-m]');
var plot=root.querySelector('.mx-plot'), caption=root.querySelector('.mx-caption');
function fmt(v){if(v===0)return '0';var a=Math.abs(v);
  if(a>=1e-3&&a<1e4)return String(parseFloat(v.toPrecision(4)));
  var s=v.toExponential(3).split('e');var e=parseInt(s[1],10);
  return s[0]+'e'+(e<0?'-':'+')+(Math.abs(e)<10?'0':'')+Math.abs(e);}
function g3(v){return String(parseFloat(v.toPrecision(3)));}
function show(){
  var r=sliders.map(function(el){return D.grid[+el.value];});
  sliders.forEach(function(el,i){el.parentNode.querySelector('output').textContent=fmt(r[i]);});
  var k=+kIn.value;kIn.parentNode.querySelector('output').textContent=k;
  var meth=D.methods[+mIn.value], entry=meth.maps[k-1];
  var b=r.length, order=r.map(function(_,i){return i;}).sort(function(x,y){return r[x]-r[y]||x-y;});
  var rs=order.map(function(i){return r[i];});
  plot.setAttribute('data-mx-key',r.join(',')+'|'+k+'|'+meth.name);
  if(typeof entry==='string'){
    caption.innerHTML="<p style='color:#b03a48'><b>Cannot compute:</b> "+entry+"</p>";
    plot.style.display='none';Plotly.purge(plot);return;}
  var A=new Array(b);
  order.forEach(function(i,pos){var s=0;for(var j=0;j<b;j++){s+=entry[pos][j]*rs[j];}A[i]=s;});
  var sum=0,abs=0;A.forEach(function(a){sum+=a;abs+=Math.abs(a);});
  var mean=A.reduce(function(s,a){return s+a;},0)/b, v=0;A.forEach(function(a){v+=(a-mean)*(a-mean);});v/=b;
  var w=D.weights[k-1], rho=0;for(var j=0;j<b;j++){rho+=w[j]*rs[j];}
  var centred=Math.abs(sum)<=1e-12*Math.max(1,abs);
  var total=centred?'<b>0</b> up to float64 rounding ('+fmt(sum)+'): centred':'<b>'+fmt(sum)+'</b>: not centred';
  caption.innerHTML='<p>sum of advantages '+total+'; mean '+fmt(mean)+'; variance across the group '+fmt(v)+
    '; max@K estimate <span class="mx-rho">'+fmt(rho)+'</span></p>';
  var x=r.map(function(v,i){return (i+1)+': r = '+g3(v);});
  var title=meth.label+': Σ A<sub>i</sub> = '+(centred?'0 (centred)':String(parseFloat(sum.toPrecision(4))));
  plot.style.display='';
  var layout=Object.assign({},D.layout,{title:Object.assign({},D.layout.title,{text:title})});
  plot.mxDrawn=Plotly.react(plot,[{type:'bar',x:x,y:A,marker:{color:meth.color},name:meth.label}],layout,D.config);
}
sliders.concat([kIn,mIn]).forEach(function(el){el.addEventListener('input',show);el.addEventListener('change',show);});
show();
"""


def linear_html(rewards: Sequence[float], k: int, method: str, step: float = 0.05) -> str:
    """The advantage explorer with one slider per reward (on a grid of ``step`` in [0, 1]), K and a method menu.

    The page computes ``A = M r_sorted`` (:func:`sorted_linear_map`) and the
    max@K estimate ``sum_i w_i r_(i)`` (the package's rank weights) in the
    browser, for any position of the sliders.
    """
    b = len(rewards)
    n = round(1 / step)
    grid = [round(i * step, 10) for i in range(n + 1)]
    starts = [round(min(max(v, 0.0), 1.0) / step) for v in rewards]
    methods: list[dict[str, Any]] = []
    for name in maxpo.METHODS:
        maps: list[Any] = []
        try:
            for kk in range(1, b + 1):
                problem = maxpo.METHODS[name].check(b, kk)
                maps.append(html.escape(problem) if problem is not None else sorted_linear_map(name, b, kk))
        except ValueError:
            continue  # not linear in the sorted rewards, or refuses real rewards: not offered here
        methods.append({"name": name, "label": viz.method_label(name), "color": viz.method_color(name),
                        "maps": maps})
    names = [m["name"] for m in methods]
    if method not in names:
        raise ValueError(f"{method!r} cannot be explored on this page (offered: {', '.join(names)})")
    from maxpo.theory import symbolic

    weights = [[float(w) for w in symbolic.maxk_weights(b, kk)] for kk in range(1, b + 1)]
    start = [grid[i] for i in starts]
    fig = figures.advantage_figure({"centred": True, "sum": 0.0, "advantages": [0.0] * b}, start, method)
    layout = _figure_json(fig)["layout"]
    sliders = "".join(f"<label>r<sub>{i + 1}</sub> <input type='range' min='0' max='{n}' step='1' value='{s}' "
                      f"data-mx-r='{i}'><output>{fmt(grid[s])}</output></label>" for i, s in enumerate(starts))
    options = "".join(f"<option value='{i}'{' selected' if m['name'] == method else ''}>"
                      f"{html.escape(m['label'])}</option>" for i, m in enumerate(methods))
    body = (f"<div class='mx-controls'>{sliders}</div><div class='mx-controls'>"
            f"<label>K <input type='range' min='1' max='{b}' step='1' value='{k}' data-mx-k='1'>"
            f"<output>{k}</output></label><label>method <select data-mx-m='1'>{options}</select></label></div>"
            "<div class='mx-caption'></div>"
            f"<div class='mx-plot plotly-graph-div' style='height:{figures.HEIGHT}px;width:100%'></div>" + _LINEAR_NOTE)
    data = {"grid": grid, "methods": methods, "weights": weights, "layout": layout,
            "config": dict(viz.PLOTLY_CONFIG)}
    return _wrap(body, data, _LINEAR_JS)
