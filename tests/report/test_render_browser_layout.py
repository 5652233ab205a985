"""The report layout as issue 17 asks for it, checked in real headless Chromium: sections in order
(summary first, results, provenance last), every link of the reports and of the index resolving,
and no table text overflowing its column or the page at a 1400 px wide window."""

from __future__ import annotations

import json
import re

from ecgprobe.report.index import render_index

# Injected into a copy of a report: after layout, lists every table cell whose content is wider
# than the cell and every table wider than its (scrolling) wrapper or the page.
_OVERFLOW = """<script>window.addEventListener('load',function(){
var bad=[];var page=document.documentElement.clientWidth;
document.querySelectorAll('table').forEach(function(t,i){
  var box=t.getBoundingClientRect();var wrap=t.parentElement;
  if(wrap&&wrap.scrollWidth>wrap.clientWidth+1)bad.push('table '+i+' wider than its wrapper: '+wrap.scrollWidth+' > '+wrap.clientWidth);
  if(box.right>page+1)bad.push('table '+i+' beyond the page: '+Math.round(box.right)+' > '+page);
  t.querySelectorAll('td,th').forEach(function(c){if(c.scrollWidth>c.clientWidth+1)bad.push('cell "'+c.textContent.slice(0,40)+'" of table '+i);});
});
var pre=document.createElement('pre');pre.id='__overflow';
pre.textContent=JSON.stringify({bad:bad,tables:document.querySelectorAll('table').length,width:page,
 sections:Array.prototype.map.call(document.querySelectorAll('main section'),function(s){return s.id;})});
document.body.appendChild(pre);});
</script>"""


def _layout(chromium, html, width=1400):
    # the copy sits beside the original so relative links and images resolve alike
    probe = html.with_name(f"{html.stem}.layout.html")
    probe.write_text(html.read_text().replace("</body>", _OVERFLOW + "</body>", 1))
    r = chromium._run(
        [f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()]
    )
    probe.unlink()
    m = re.search(r'<pre id="__overflow">(.*?)</pre>', r.stdout, re.S)
    assert m, r.stderr[-1500:]
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


def test_sections_in_order_and_no_table_overflows_at_1400px(computed, chromium):
    for folder in (computed.model_dir, computed.compare_dir):
        found = _layout(chromium, folder / "report.html")
        assert found["width"] >= 1380 and found["tables"] >= 3
        assert found["bad"] == [], found["bad"][:10]
        ids = found["sections"]
        expected = [s.id for s in computed.report.sections()] if folder == computed.model_dir else None
        assert ids[0] == "summary" and ids[-1] == "provenance", ids
        if expected is not None:
            assert ids == expected  # the DOM shows the sections in the report's own order
            # results before the analyses that read them: accuracy right after the summary
            assert ids[1] == "accuracy", ids


def test_every_link_of_the_index_and_the_reports_resolves(computed, chromium):
    root = computed.model_dir.parent
    entries = [
        ("model", computed.model_dir, computed.report),
        ("compare", computed.compare_dir, computed.compare),
    ]
    index = root / "index.html"
    index.write_text(render_index("t", "two reports", entries, root))
    text = index.read_text()
    hrefs = re.findall(r'href="([^"]+)"', text)
    assert {"model/report.html", "model/report.pdf", "model/results.json", "compare/report.html"} <= set(
        hrefs
    )
    assert all((root / h).is_file() for h in hrefs), hrefs
    for folder in (computed.model_dir, computed.compare_dir):  # each report's own file links
        links = re.findall(r'<a href="([^"#][^"]*)"', (folder / "report.html").read_text())
        assert links and all((folder / h).is_file() for h in links), links
    found = chromium.check(index)
    assert found["errors"] == [] and found["broken"] == []
