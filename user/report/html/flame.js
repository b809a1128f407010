/* tracer's HTML report: draws the header figures, memory over time, the
 * flame graph of each view and its table from the JSON document in
 * #data (laid out as user/report/html.c describes). No library, no network.
 *
 * The URL fragment sets the state, so that a page can be opened (or
 * rendered headless) in one:
 * #view=NAME&orient=flame|icicle&search=TEXT&sort=COLUMN[-asc] (COLUMN one
 * of the table's data-col names: site, size, sdiff, count, cdiff, avg). */
(function () {
	"use strict";

	var D = JSON.parse(document.getElementById("data").textContent);
	var compare = D.kind === "compare";
	var names = Object.keys(D.views);
	var state = { view: names[0], orient: "icicle", search: "", zoom: null };
	var ROW = 17; /* px per frame row, as style.css draws .fr */
	var MIN_WIDTH = 0.3; /* px: narrower frames are drawn as part of their parent */
	var $ = function (id) { return document.getElementById(id); };
	var trees = {};
	var sort = { kind: null, asc: false }; /* the table's order: tracemalloc's until a click */

	/* tracemalloc's _format_size */
	function fmtSize(size, sign) {
		var units = ["B", "KiB", "MiB", "GiB", "TiB"];
		for (var u = 0; u < 5; u++) {
			var a = Math.abs(size);
			if (a < 100 && u > 0)
				return (sign && size >= 0 ? "+" : "") + size.toFixed(1) + " " + units[u];
			if (a < 10 * 1024 || u === 4)
				return (sign && size >= 0 ? "+" : "") + size.toFixed(0) + " " + units[u];
			size /= 1024;
		}
	}
	function signed(n) { return (n > 0 ? "+" : "") + n; }
	function pct(part, whole) {
		return whole ? (100 * part / whole).toFixed(2) + " %" : "-";
	}
	function el(tag, cls, text) {
		var e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text !== undefined) e.textContent = text;
		return e;
	}
	/* a size as people read it, then the exact bytes */
	function sizeCell(td, bytes, sign) {
		td.appendChild(document.createTextNode(fmtSize(bytes, sign) + " "));
		td.appendChild(el("small", null, "(" + (sign ? signed(bytes) : bytes) + " B)"));
		td.setAttribute("data-v", bytes);
	}

	/* -- fragment state -------------------------------------------------- */
	function readHash() {
		var h = location.hash.replace(/^#/, "");
		state.search = "";
		h.split("&").forEach(function (kv) {
			var i = kv.indexOf("=");
			if (i < 0) return;
			var k = kv.slice(0, i), v;
			try { v = decodeURIComponent(kv.slice(i + 1).replace(/\+/g, " ")); }
			catch (e) { return; }
			if (k === "view" && D.views[v]) state.view = v;
			else if (k === "orient" && (v === "flame" || v === "icicle")) state.orient = v;
			else if (k === "search") state.search = v;
			else if (k === "sort") {
				var m = /^(site|size|sdiff|count|cdiff|avg)(-asc)?$/.exec(v);
				if (m) sort = { kind: m[1], asc: !!m[2] };
			}
		});
	}
	function writeHash() {
		var parts = [];
		if (state.view !== names[0]) parts.push("view=" + encodeURIComponent(state.view));
		if (state.orient !== "icicle") parts.push("orient=" + state.orient);
		if (state.search) parts.push("search=" + encodeURIComponent(state.search));
		if (sort.kind) parts.push("sort=" + sort.kind + (sort.asc ? "-asc" : ""));
		try {
			history.replaceState(null, "", parts.length ? "#" + parts.join("&") :
					     location.pathname + location.search);
		} catch (e) { /* a file: URL in a browser that refuses: the state stays */ }
	}

	/* -- header ---------------------------------------------------------- */
	function figures(h) {
		var dur = h.duration_ns / 1e9;
		var rows = [
			["target", "pid " + h.pid + " (" + (h.command === null ? "?" : h.command) + ")"],
			["host", h.host === null ? "?" : h.host],
			["nframe", String(h.nframe)],
			["traced current", [h.traced_current]],
			["traced peak", [h.traced_peak]],
		];
		if (h.traced_of === "python")
			rows.push(["all domains current", [h.all_current]],
				  ["all domains peak", [h.all_peak]]);
		rows.push(["tracer memory", [h.tracer_memory]],
			  ["duration", dur.toFixed(dur < 10 ? 2 : 0) + " s"],
			  ["taken at", h.taken_at ? new Date(h.taken_at * 1000).toISOString() : "?"],
			  ["events", h.allocations + " allocations, " + h.frees + " frees, " +
			   h.traces + " live traces"]);
		return rows;
	}
	function drawHeader() {
		var h = D.header, t = $("figures");
		var cols = compare ? [figures(D.old_header), figures(h)] : [figures(h)];
		document.title = "tracer: pid " + h.pid + (h.command ? " " + h.command : "") +
			(compare ? " (compare)" : "");
		$("title").textContent = (compare ? "tracer compare: " : "tracer: ") + "pid " +
			h.pid + (h.command ? " (" + h.command + ")" : "");
		if (compare) {
			var tr = el("tr");
			tr.appendChild(el("th"));
			tr.appendChild(el("th", null, "old snapshot"));
			tr.appendChild(el("th", null, "new snapshot"));
			t.appendChild(tr);
		}
		cols[0].forEach(function (row, i) {
			var tr = el("tr");
			tr.appendChild(el("th", null, row[0]));
			cols.forEach(function (c) {
				var td = el("td"), v = c[i][1];
				if (Array.isArray(v)) sizeCell(td, v[0]);
				else td.textContent = v;
				td.setAttribute("data-figure", row[0]);
				tr.appendChild(td);
			});
			t.appendChild(tr);
		});
		/* every counter of something not traced: the nonzero ones in view */
		var box = $("losses");
		(compare ? [["old", D.old_header], ["new", h]] : [["", h]]).forEach(function (p) {
			var nonzero = p[1].counters.filter(function (c) { return c[1] > 0; });
			var line = el("div");
			line.appendChild(el("strong", null, (p[0] ? p[0] + " " : "") + "counters: "));
			if (!nonzero.length) line.appendChild(document.createTextNode("all 0"));
			nonzero.forEach(function (c, i) {
				line.appendChild(el("span", "loss", c[0] + " " + c[1]));
				if (i + 1 < nonzero.length) line.appendChild(document.createTextNode(", "));
			});
			var det = el("details");
			det.appendChild(el("summary", null, "all " + p[1].counters.length + " counters"));
			det.appendChild(el("div", null, p[1].counters.map(function (c) {
				return c[0] + " " + c[1];
			}).join(", ")));
			box.appendChild(line);
			box.appendChild(det);
		});
	}

	/* -- memory over time (a series) --------------------------------------- */
	function drawSeries() {
		var s = D.series;
		if (!s || !s.length) return;
		$("series").hidden = false;
		var W = 640, H = 150, L = 70, R = 10, T = 10, B = 24;
		var tmax = Math.max(s[s.length - 1][0], 1e-9);
		var vmax = Math.max.apply(null, s.map(function (p) { return p[2]; })) || 1;
		function x(t) { return (L + (W - L - R) * t / tmax).toFixed(1); }
		function y(v) { return (T + (H - T - B) * (1 - v / vmax)).toFixed(1); }
		function end(tag) { return "<" + "/" + tag + ">"; }
		function esc(t) { return String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;"); }
		function line(k) {
			return s.map(function (p) { return x(p[0]) + "," + y(p[k]); }).join(" ");
		}
		var svg = '<svg width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + " " + H + '">';
		svg += '<line x1="' + L + '" y1="' + (H - B) + '" x2="' + (W - R) + '" y2="' +
			(H - B) + '" stroke="#999"/>';
		svg += '<line x1="' + L + '" y1="' + T + '" x2="' + L + '" y2="' + (H - B) +
			'" stroke="#999"/>';
		svg += '<text x="' + (L - 4) + '" y="' + (T + 9) + '" text-anchor="end">' +
			esc(fmtSize(vmax)) + end("text");
		svg += '<text x="' + (L - 4) + '" y="' + (H - B) + '" text-anchor="end">0 B' + end("text");
		svg += '<text x="' + L + '" y="' + (H - 6) + '">0 s' + end("text");
		svg += '<text x="' + (W - R) + '" y="' + (H - 6) + '" text-anchor="end">' +
			tmax.toFixed(1) + " s" + end("text");
		svg += '<polyline class="peak" points="' + line(2) + '"/>';
		svg += '<polyline class="current" points="' + line(1) + '"/>';
		s.forEach(function (p) {
			svg += '<circle r="3" cx="' + x(p[0]) + '" cy="' + y(p[1]) + '" data-bytes="' +
				p[1] + '"><title>' + p[0].toFixed(1) + " s: current " +
				esc(fmtSize(p[1])) + " (" + p[1] + " B), peak " + esc(fmtSize(p[2])) +
				" (" + p[2] + " B)" + end("title") + end("circle");
		});
		$("chart").innerHTML = svg + end("svg");
		$("chart").appendChild(el("div", null, s.length + " reports; solid: traced current, " +
			"dashed: traced peak"));
	}

	/* -- the tree of a view -------------------------------------------------- */
	function build(v) {
		var root = null, maxDiff = 0;
		function node(a, parent, depth) {
			var n = { f: a[0], s: a[1], c: a[2], kids: [], parent: parent, depth: depth,
				  os: compare ? a[4] : 0, oc: compare ? a[5] : 0 };
			n.label = n.f < 0 ? "all" : D.frames[n.f][0];
			n.fn = n.f < 0 ? null : D.frames[n.f][1];
			if (parent && compare) maxDiff = Math.max(maxDiff, Math.abs(n.s - n.os));
			n.kids = a[3].map(function (k) { return node(k, n, depth + 1); });
			/* biggest first, then by name: the same page every time */
			n.kids.sort(function (p, q) {
				return q.s - p.s || (p.label < q.label ? -1 : p.label > q.label ? 1 : 0);
			});
			n.height = 1 + n.kids.reduce(function (m, k) { return Math.max(m, k.height); }, 0);
			return n;
		}
		root = node(v.tree, null, 0);
		return { root: root, maxDiff: maxDiff };
	}

	function hue(label) {
		var h = 0;
		for (var i = 0; i < label.length; i++) h = (h * 31 + label.charCodeAt(i)) >>> 0;
		return h;
	}
	/* normal: warm for native frames, green for Python's; compare: red for
	 * growth, blue for shrink, as strong as the change is large */
	function colour(n, t) {
		if (compare) {
			var d = n.s - n.os;
			if (!d) return ["same", "rgb(225,225,225)"];
			var r = Math.sqrt(Math.abs(d) / (t.maxDiff || 1)), k = Math.round(210 - 170 * r);
			return d > 0 ? ["grow", "rgb(255," + k + "," + k + ")"]
				     : ["shrink", "rgb(" + k + "," + k + ",255)"];
		}
		if (n.f < 0) return ["root", "rgb(200,200,200)"];
		if (n.label.charAt(0) === "[" || n.label.charAt(0) === "<")
			return ["other", "rgb(190,190,190)"];
		var h = hue(n.label);
		if (/\.py:\d+$/.test(n.label))
			return ["python", "hsl(" + (80 + h % 50) + ",55%," + (55 + (h >> 8) % 15) + "%)"];
		return ["native", "hsl(" + (h % 45) + ",80%," + (58 + (h >> 8) % 14) + "%)"];
	}

	/* in the box: the file without its directory, and the function the
	 * label does not name already; the whole label is in data-frame and
	 * the tooltip */
	function boxText(n) {
		var l = n.label, colon = l.lastIndexOf(":"), slash = l.lastIndexOf("/", colon);
		if (n.f >= 0 && slash >= 0 && l.charAt(0) !== "[" && l.charAt(0) !== "<")
			l = l.slice(slash + 1);
		if (n.fn && n.label.indexOf(n.fn) < 0) l = n.fn + " " + l;
		return l;
	}

	function matches(n, q) {
		if (!q || n.f < 0) return false;
		q = q.toLowerCase();
		return n.label.toLowerCase().indexOf(q) >= 0 ||
		       (n.fn !== null && n.fn.toLowerCase().indexOf(q) >= 0);
	}

	/* -- drawing ----------------------------------------------------------- */
	function draw() {
		var v = D.views[state.view], t = trees[state.view];
		if (!t) t = trees[state.view] = build(v);
		var box = $("flame"), width = box.clientWidth || 800;
		var zoom = state.zoom || t.root, total = t.root.s;
		var rows = t.root.height, frames = [];
		box.textContent = "";
		$("view-title").textContent = v.title;
		$("orient").textContent = state.orient === "icicle" ? "Flame (root at the bottom)"
								    : "Icicle (root at the top)";
		box.style.height = rows * ROW + "px";
		if (!total) {
			box.style.height = "auto";
			box.appendChild(el("div", "empty", "No live traces."));
		}
		function top(depth) {
			return (state.orient === "icicle" ? depth : rows - 1 - depth) * ROW;
		}
		function put(n, x, w, anc) {
			var d = el("div", "fr", boxText(n)), c = colour(n, t);
			d.className = "fr " + c[0] + (anc ? " anc" : "");
			d.style.left = x.toFixed(2) + "px";
			d.style.width = w.toFixed(2) + "px";
			d.style.top = top(n.depth) + "px";
			d.style.backgroundColor = c[1];
			d.setAttribute("data-frame", n.label);
			if (n.fn) d.setAttribute("data-function", n.fn);
			d.setAttribute("data-bytes", n.s);
			d.setAttribute("data-blocks", n.c);
			if (compare) d.setAttribute("data-diff", n.s - n.os);
			d._node = n;
			frames.push(d);
			box.appendChild(d);
		}
		/* the zoomed frame's ancestors span the whole width */
		for (var a = zoom.parent; a; a = a.parent) put(a, 0, width, true);
		(function walk(n, x, w) {
			put(n, x, w, false);
			var cx = x;
			n.kids.forEach(function (k) {
				var kw = w * k.s / n.s;
				if (kw >= MIN_WIDTH) walk(k, cx, kw);
				cx += kw;
			});
		})(zoom, 0, width);
		highlight(frames, t);
	}

	/* Marks the frames that match the search and says which share of the
	 * view they hold (a frame under a matching one is not counted twice). */
	function highlight(frames, t) {
		var q = state.search, out = $("matched");
		frames.forEach(function (d) {
			d.classList.toggle("match", matches(d._node, q));
		});
		if (!q) {
			out.textContent = "";
			out.removeAttribute("data-bytes");
			return;
		}
		var bytes = 0, blocks = 0;
		(function walk(n) {
			if (matches(n, q)) {
				bytes += n.s;
				blocks += n.c;
				return;
			}
			n.kids.forEach(walk);
		})(t.root);
		out.textContent = "matched " + fmtSize(bytes) + " (" + bytes + " B, " + blocks +
			" blocks): " + pct(bytes, t.root.s) + " of the total";
		out.setAttribute("data-bytes", bytes);
		out.setAttribute("data-blocks", blocks);
	}

	/* -- tooltip ------------------------------------------------------------- */
	function tooltip(e) {
		var tip = $("tooltip"), d = e.target;
		if (!d.classList || !d.classList.contains("fr")) {
			tip.hidden = true;
			return;
		}
		var n = d._node, t = trees[state.view], lines = [n.label];
		if (n.fn && n.label.indexOf(n.fn) < 0) lines.push("in " + n.fn);
		lines.push(fmtSize(n.s) + " (" + n.s + " B) in " + n.c + " blocks");
		lines.push(pct(n.s, t.root.s) + " of the total" +
			   (state.zoom ? ", " + pct(n.s, state.zoom.s) + " of the zoomed frame" : ""));
		if (compare)
			lines.push("change: " + fmtSize(n.s - n.os, true) + " (" + signed(n.s - n.os) +
				   " B), " + signed(n.c - n.oc) + " blocks; before: " + fmtSize(n.os) +
				   " in " + n.oc + " blocks");
		tip.textContent = "";
		lines.forEach(function (l) { tip.appendChild(el("div", null, l)); });
		tip.hidden = false;
		var x = e.clientX + 14, y = e.clientY + 14;
		if (x + tip.offsetWidth > window.innerWidth) x = Math.max(0, e.clientX - tip.offsetWidth - 8);
		if (y + tip.offsetHeight > window.innerHeight) y = Math.max(0, e.clientY - tip.offsetHeight - 8);
		tip.style.left = x + "px";
		tip.style.top = y + "px";
	}

	/* -- table ----------------------------------------------------------------- */
	function drawTable() {
		var v = D.views[state.view], thead = $("table").tHead, tbody = $("table").tBodies[0];
		/* [title, value of a row, kind] */
		var cols = [["Site", function (r) { return r[0]; }, "site"],
			    ["Size", function (r) { return r[2]; }, "size"]];
		if (compare) cols.push(["Size diff", function (r) { return r[4]; }, "sdiff"]);
		cols.push(["Count", function (r) { return r[3]; }, "count"]);
		if (compare) cols.push(["Count diff", function (r) { return r[5]; }, "cdiff"]);
		cols.push(["Average", function (r) { return r[3] ? r[2] / r[3] : -1; }, "avg"]);
		var rows = v.table.map(function (r, i) { return { r: r, i: i }; });
		var col = -1;
		cols.forEach(function (c, i) { if (c[2] === sort.kind) col = i; });
		if (col >= 0) {
			var get = cols[col][1];
			rows.sort(function (p, q) {
				var a = get(p.r), b = get(q.r);
				var c = a < b ? -1 : a > b ? 1 : 0;
				return (sort.asc ? c : -c) || p.i - q.i; /* ties as tracemalloc ranks them */
			});
		}
		$("table-title").textContent = "Top " + v.table.length + " " + D.key +
			(compare ? " differences" : " statistics") + (D.cumulative ? " (cumulative)" : "");
		thead.textContent = "";
		tbody.textContent = "";
		var tr = el("tr");
		cols.forEach(function (c, i) {
			var th = el("th", i === col ? "sorted " + (sort.asc ? "asc" : "desc") : "", c[0]);
			th.setAttribute("data-col", c[2]);
			th.addEventListener("click", function () {
				if (sort.kind === c[2]) sort.asc = !sort.asc;
				else sort = { kind: c[2], asc: c[2] === "site" };
				writeHash();
				drawTable();
			});
			tr.appendChild(th);
		});
		thead.appendChild(tr);
		rows.forEach(function (p) {
			var r = p.r, tr = el("tr");
			tr.setAttribute("data-site", r[0]);
			cols.forEach(function (c) {
				var td = el("td", c[2] === "site" ? "site" : "num"), val = c[1](r);
				if (c[2] === "site") {
					td.textContent = r[0];
					if (r[1]) td.title = "in " + r[1];
				} else if (c[2] === "size") {
					sizeCell(td, val);
				} else if (c[2] === "sdiff") {
					sizeCell(td, val, true);
					td.className += val > 0 ? " grow" : val < 0 ? " shrink" : "";
				} else if (c[2] === "avg") {
					td.textContent = val < 0 ? "-" : fmtSize(val);
					td.setAttribute("data-v", val);
				} else {
					td.textContent = c[2] === "cdiff" ? signed(val) : String(val);
					td.setAttribute("data-v", val);
				}
				tr.appendChild(td);
			});
			tbody.appendChild(tr);
		});
	}

	/* -- controls --------------------------------------------------------------- */
	function drawViews() {
		var box = $("views");
		box.textContent = "";
		if (names.length < 2) return;
		names.forEach(function (name) {
			var b = el("button", name === state.view ? "current" : "", D.views[name].title);
			b.type = "button";
			b.setAttribute("data-view", name);
			b.addEventListener("click", function () {
				state.view = name;
				state.zoom = null;
				writeHash();
				drawViews();
				draw();
				drawTable();
			});
			box.appendChild(b);
		});
	}
	function drawLegend() {
		var l = $("legend");
		var items = compare ? [["rgb(255,60,60)", "grew"], ["rgb(60,60,255)", "shrank"],
				       ["rgb(225,225,225)", "unchanged"]]
				    : [["hsl(20,80%,62%)", "native frame"], ["hsl(100,55%,60%)", "Python frame"]];
		items.forEach(function (it) {
			var s = el("span", null, it[1]);
			s.style.backgroundColor = it[0];
			if (compare && it[1] !== "unchanged") s.style.color = "#fff";
			l.appendChild(s);
		});
		l.appendChild(document.createTextNode(" click a frame to zoom"));
	}

	function init() {
		readHash();
		drawHeader();
		drawSeries();
		drawViews();
		drawLegend();
		var search = $("search");
		search.value = state.search;
		search.addEventListener("input", function () {
			state.search = search.value;
			writeHash();
			var t = trees[state.view];
			highlight(Array.prototype.slice.call(document.querySelectorAll("#flame .fr")), t);
		});
		$("orient").addEventListener("click", function () {
			state.orient = state.orient === "icicle" ? "flame" : "icicle";
			writeHash();
			draw();
		});
		$("reset").addEventListener("click", function () {
			state.zoom = null;
			draw();
		});
		var flame = $("flame");
		flame.addEventListener("click", function (e) {
			var n = e.target._node;
			if (!n) return;
			state.zoom = n.parent ? n : null;
			draw();
		});
		flame.addEventListener("mousemove", tooltip);
		flame.addEventListener("mouseleave", function () { $("tooltip").hidden = true; });
		window.addEventListener("hashchange", function () {
			readHash();
			search.value = state.search;
			drawViews();
			draw();
			drawTable();
		});
		var pending = 0;
		window.addEventListener("resize", function () {
			clearTimeout(pending);
			pending = setTimeout(draw, 100);
		});
		draw();
		drawTable();
		document.body.setAttribute("data-ready", "1");
	}
	init();
})();
