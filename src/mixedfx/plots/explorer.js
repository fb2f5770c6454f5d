/* mixedfx pooling explorer: simulation, one-way REML fit and SVG drawing; plain JavaScript, no libraries. */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var COLORS = { complete: "#D55E00", no: "#0072B2", partial: "#009E73", truth: "#000000", obs: "#a0a0a0",
                 arrow: "#555555", line: "#6b6b6b", ellipse: "#CC79A7" };   // Okabe-Ito
  var NAMES = { complete: "Complete pooling", no: "No pooling", partial: "Partial pooling" };
  var payload = JSON.parse(document.getElementById("mfx-payload").textContent);
  var FIT = payload.mode === "fit";
  var S = payload.settings || {};
  var ui = { method: S.method || "partial", selected: -1, truth: true, obs: false, arrows: true };
  var current = null;    // the computed view: clusters, estimates, fit

  // ------------------------------------------------------------------ random numbers
  function mulberry(seed) {          // 32-bit state, period 2^32; enough for a teaching widget
    var a = seed >>> 0;
    return function () {
      a = (a + 0x6D2B79F5) >>> 0;
      var t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function streamSeed(seed, j, k) {  // an independent stream per (seed, cluster, purpose)
    var h = Math.imul((seed >>> 0) ^ 0x85EBCA6B, 0x9E3779B1);
    h ^= Math.imul(j + 1, 0xC2B2AE35);
    h ^= Math.imul(k + 7, 0x27D4EB2F);
    h = Math.imul(h ^ (h >>> 16), 0x85EBCA6B);
    h = Math.imul(h ^ (h >>> 13), 0xC2B2AE35);
    return (h ^ (h >>> 16)) >>> 0;
  }
  function normal(rng) {             // Box-Muller, one draw per pair of uniforms
    var u1 = 1 - rng(), u2 = rng();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  function poisson(rng, lam) {       // Knuth's product method in pieces of mean <= 30 (no underflow)
    var k = 0;
    while (lam > 0) {
      var piece = Math.min(lam, 30), L = Math.exp(-piece), p = rng();
      while (p > L) { k += 1; p *= rng(); }
      lam -= piece;
    }
    return k;
  }

  // ------------------------------------------------------------------ simulation
  // cluster j: size 1 + Poisson((n - 1) exp(0.6 z - 0.18)) (mean n, sizes spread), true mean mu + sigma_u z',
  // observations true mean + sigma_e z''; each from its own stream, so a larger J or n adds to the same data
  function simulate(s) {
    var J = s.J, clusters = [], y = [], g = [], j, singletons = 0;
    for (j = 0; j < J; j++) {
      var ra = mulberry(streamSeed(s.seed, j, 0)), rb = mulberry(streamSeed(s.seed, j, 1));
      var zSize = normal(ra), zU = normal(ra);
      var size = 1 + poisson(rb, (s.n - 1) * Math.exp(0.6 * zSize - 0.18));
      singletons += size === 1 ? 1 : 0;
      clusters.push({ label: "c" + (j + 1 < 10 ? "0" : "") + (j + 1), n: size, truth: s.mu + s.sigma_u * zU, y: [] });
    }
    if (singletons === J) clusters[0].n = 2;    // all single rows: tau and sigma could not be told apart
    for (j = 0; j < J; j++) {
      var c = clusters[j], rc = mulberry(streamSeed(s.seed, j, 2));
      for (var i = 0; i < c.n; i++) {
        var v = c.truth + s.sigma_e * normal(rc);
        c.y.push(v); y.push(v); g.push(c.label);
      }
    }
    return { clusters: clusters, y: y, g: g };
  }

  // ------------------------------------------------------------------ REML for y_ij = mu + u_j + e_ij
  // gamma = tau^2 / sigma^2; with sigma^2 profiled the REML criterion is
  //   (N - 1) log Q(gamma) + sum log(1 + n_j gamma) + log sum w_j,  w_j = n_j / (1 + n_j gamma),
  //   Q = SSW + sum w_j (ybar_j - mu_hat)^2,  mu_hat = sum w_j ybar_j / sum w_j,  sigma^2 = Q / (N - 1).
  function fitOneWay(n, ybar, ssw) {
    var J = n.length, N = 0, j;
    for (j = 0; j < J; j++) N += n[j];
    function parts(gam) {
      var sw = 0, swy = 0, w = new Array(J);
      for (var k = 0; k < J; k++) { w[k] = n[k] / (1 + n[k] * gam); sw += w[k]; swy += w[k] * ybar[k]; }
      var mu = swy / sw, Q = ssw, swd2 = 0, sw2 = 0;
      for (k = 0; k < J; k++) {
        var d = ybar[k] - mu;
        Q += w[k] * d * d; swd2 += w[k] * w[k] * d * d; sw2 += w[k] * w[k];
      }
      return { w: w, sw: sw, sw2: sw2, swd2: swd2, mu: mu, Q: Q };
    }
    function crit(gam) {
      var p = parts(gam), ld = 0;
      for (var k = 0; k < J; k++) ld += Math.log1p(n[k] * gam);
      return (N - 1) * Math.log(p.Q) + ld + Math.log(p.sw);
    }
    function slope(gam) {     // d crit / d gamma
      var p = parts(gam);
      return p.sw - p.sw2 / p.sw - (N - 1) * p.swd2 / p.Q;
    }
    var grid = [0], best = 0, bestVal = crit(0);
    for (j = 0; j <= 160; j++) grid.push(Math.pow(10, -4 + j * 0.05));      // theta = sqrt(gamma) in 1e-4 .. 1e4
    for (j = 1; j < grid.length; j++) {
      var v = crit(grid[j] * grid[j]);
      if (v < bestVal) { bestVal = v; best = j; }
    }
    var gam;
    if (best === 0 && slope(0) >= 0) {
      gam = 0;                                    // boundary: singular fit, as lme4 reports
    } else if (best === grid.length - 1) {
      gam = grid[best] * grid[best];
    } else {
      var lo = best > 0 ? grid[best - 1] * grid[best - 1] : 0, hi = grid[best + 1] * grid[best + 1];
      for (var it = 0; it < 300 && hi - lo > 1e-15 * hi; it++) {
        var mid = 0.5 * (lo + hi);
        if (slope(mid) > 0) hi = mid; else lo = mid;
      }
      gam = 0.5 * (lo + hi);
    }
    var p = parts(gam), sigma2 = p.Q / (N - 1), lam = [], blup = [], condsd = [];
    for (j = 0; j < J; j++) {
      lam.push(n[j] * gam / (1 + n[j] * gam));
      blup.push(lam[j] * (ybar[j] - p.mu));
      condsd.push(Math.sqrt(sigma2 * gam / (1 + n[j] * gam)));
    }
    return { gamma: gam, mu: p.mu, sigma: Math.sqrt(sigma2), tau: Math.sqrt(gam * sigma2), lambda: lam,
             blup: blup, condsd: condsd, singular: gam === 0, criterion: crit(gam) };
  }

  function computeSimulation() {
    var sim = simulate(S), cl = sim.clusters, J = cl.length, n = [], ybar = [], ssw = 0, total = 0, N = 0, j, i;
    for (j = 0; j < J; j++) {
      var s = 0;
      for (i = 0; i < cl[j].n; i++) s += cl[j].y[i];
      var m = s / cl[j].n;
      for (i = 0; i < cl[j].n; i++) ssw += (cl[j].y[i] - m) * (cl[j].y[i] - m);
      n.push(cl[j].n); ybar.push(m); total += s; N += cl[j].n;
    }
    var complete = total / N, f = fitOneWay(n, ybar, ssw), mse = { complete: 0, no: 0, partial: 0 };
    for (j = 0; j < J; j++) {
      cl[j].raw = ybar[j]; cl[j].complete = complete; cl[j].blup = f.blup[j]; cl[j].partial = f.mu + f.blup[j];
      cl[j].lambda = f.lambda[j]; cl[j].condsd = f.condsd[j];
      mse.complete += Math.pow(complete - cl[j].truth, 2) / J;
      mse.no += Math.pow(ybar[j] - cl[j].truth, 2) / J;
      mse.partial += Math.pow(cl[j].partial - cl[j].truth, 2) / J;
    }
    return { dim: 1, clusters: cl, y: sim.y, g: sim.g, complete: complete, fit: f, mse: mse, center: [f.mu] };
  }

  function computeFit() {
    var gs = payload.groups, cl = [], dim = payload.dim;
    for (var j = 0; j < gs.length; j++) {
      var G = gs[j];
      cl.push({ label: G.label, n: G.n, raw: dim === 1 ? G.raw[0] : G.raw, partial: dim === 1 ? G.blup[0] : G.blup,
                complete: dim === 1 ? payload.center[0] : payload.center, blup: G.ranef, lambda: G.lambda,
                condsd: G.condsd, y: G.y || [] });
    }
    return { dim: dim, clusters: cl, center: payload.center, complete: payload.center[0] };
  }

  // ------------------------------------------------------------------ drawing helpers
  function el(tag, attrs, parent, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "n/a";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
    return String(+v.toPrecision(4));
  }
  function shorten(s) { return s.length > 8 ? s.slice(0, 7) + "\u2026" : s; }
  function niceTicks(lo, hi, m) {
    var step0 = (hi - lo) / m, mag = Math.pow(10, Math.floor(Math.log10(step0))), r = step0 / mag;
    var step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag, out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(+v.toFixed(12));
    return out;
  }
  function extent(vals) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < vals.length; i++) if (vals[i] !== null && isFinite(vals[i])) {
      if (vals[i] < lo) lo = vals[i];
      if (vals[i] > hi) hi = vals[i];
    }
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9 * Math.max(1, Math.abs(hi))) { lo -= 1; hi += 1; }
    var pad = 0.06 * (hi - lo);
    return [lo - pad, hi + pad];
  }
  function marker(kind, x, y, parent, extra) {
    var a = extra || {}, e, r = 5;
    if (kind === "no") e = el("rect", { x: x - r, y: y - r, width: 2 * r, height: 2 * r, fill: COLORS.no }, parent);
    else if (kind === "partial") e = el("circle", { cx: x, cy: y, r: r + 0.5, fill: COLORS.partial }, parent);
    else if (kind === "complete") e = el("path", { d: "M" + x + "," + (y - r - 1) + "L" + (x + r + 1) + "," + (y + r) +
                                                      "L" + (x - r - 1) + "," + (y + r) + "Z", fill: COLORS.complete }, parent);
    else e = el("path", { d: "M" + x + "," + (y - 6) + "L" + (x + 6) + "," + y + "L" + x + "," + (y + 6) + "L" + (x - 6) + "," + y + "Z",
                          fill: "none", stroke: COLORS.truth, "stroke-width": 1.6 }, parent);
    for (var k in a) if (Object.prototype.hasOwnProperty.call(a, k)) e.setAttribute(k, a[k]);
    return e;
  }
  function arrow(x1, y1, x2, y2, parent) {    // from the raw estimate to the edge of the shown marker
    var len = Math.hypot(x2 - x1, y2 - y1);
    if (len < 9) return;
    var f = (len - 7) / len, e = el("line", { x1: x1, y1: y1, x2: x1 + f * (x2 - x1), y2: y1 + f * (y2 - y1),
                                              stroke: COLORS.arrow, "stroke-width": 1.3 }, parent);
    if (len > 16) e.setAttribute("marker-end", "url(#mfx-arrow)");
  }
  function axes(svg, box, xs, ys, xTicks, yTicks, xTitle, yTitle, xLabels) {
    var g = el("g", { "class": "axes" }, svg), i, t;
    for (i = 0; i < yTicks.length; i++) {
      t = el("g", { "class": "tick" }, g);
      el("line", { x1: box.l, x2: box.r, y1: ys(yTicks[i]), y2: ys(yTicks[i]) }, t);
      el("text", { x: box.l - 6, y: ys(yTicks[i]) + 4, "text-anchor": "end" }, t, fmt(yTicks[i]));
    }
    for (i = 0; i < xTicks.length; i++) {
      t = el("g", { "class": "tick" }, g);
      if (!xLabels) el("line", { y1: box.t, y2: box.b, x1: xs(xTicks[i]), x2: xs(xTicks[i]) }, t);
      el("text", { x: xs(xTicks[i]), y: box.b + 16, "text-anchor": "middle" }, t,
         xLabels ? xLabels[i] : fmt(xTicks[i]));
    }
    el("path", { "class": "domain", d: "M" + box.l + "," + box.t + "V" + box.b + "H" + box.r, fill: "none" }, g);
    el("text", { "class": "axis-title", x: (box.l + box.r) / 2, y: box.b + 38, "text-anchor": "middle" }, g, xTitle);
    el("text", { "class": "axis-title", transform: "translate(16," + ((box.t + box.b) / 2) + ") rotate(-90)",
                 "text-anchor": "middle" }, g, yTitle);
  }
  function defs(svg) {
    var d = el("defs", {}, svg);
    var m = el("marker", { id: "mfx-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6,
                           orient: "auto-start-reverse" }, d);
    el("path", { d: "M0,0L10,5L0,10Z", fill: COLORS.arrow }, m);
  }
  function clearSvg(svg) {
    var keep = document.getElementById("chart-label");
    while (svg.lastChild && svg.lastChild !== keep) svg.removeChild(svg.lastChild);
    while (svg.firstChild && svg.firstChild !== keep) svg.removeChild(svg.firstChild);
  }

  // ------------------------------------------------------------------ the chart
  var BOX = { l: 64, r: 740, t: 16, b: 384 };
  var positions = [];          // screen position of each group's shown estimate (for the tooltip)

  function estimateOf(c, method) { return method === "complete" ? c.complete : method === "no" ? c.raw : c.partial; }

  function drawOneDim(svg) {
    var cl = current.clusters, J = cl.length, order = [], i, j, vals = [];
    for (j = 0; j < J; j++) order.push(j);
    order.sort(function (a, b) { return cl[a].n - cl[b].n || a - b; });
    current.order = order;
    for (j = 0; j < J; j++) {
      vals.push(cl[j].raw, cl[j].partial, cl[j].complete);
      if (!FIT && ui.truth) vals.push(cl[j].truth);
      if (ui.obs) for (i = 0; i < cl[j].y.length; i++) vals.push(cl[j].y[i]);
      if (FIT && ui.method === "partial") vals.push(cl[j].partial - cl[j].condsd[0], cl[j].partial + cl[j].condsd[0]);
    }
    var ext = extent(vals), band = (BOX.r - BOX.l) / J;
    var xs = function (k) { return BOX.l + band * (k + 0.5); };
    var ys = function (v) { return BOX.b - (v - ext[0]) / (ext[1] - ext[0]) * (BOX.b - BOX.t); };
    var widest = 0;
    for (j = 0; j < J; j++) widest = Math.max(widest, FIT ? shorten(String(cl[j].label)).length : String(cl[j].n).length);
    var every = Math.max(1, Math.ceil(J * (7.5 * widest + 12) / (BOX.r - BOX.l))), xt = [], xl = [];
    for (i = 0; i < J; i += every) { xt.push(i); xl.push(FIT ? shorten(String(cl[order[i]].label)) : String(cl[order[i]].n)); }
    axes(svg, BOX, xs, ys, xt, niceTicks(ext[0], ext[1], 7),
         FIT ? payload.group + " (ordered by group size n\u2c7c; hover for details)"
             : "clusters ordered by size (tick labels: cluster size n\u2c7c)",
         FIT ? payload.terms[0] + " per " + payload.group : "cluster mean", xl);
    if (ui.selected >= 0) {
      var k = order.indexOf(ui.selected);
      el("rect", { x: BOX.l + band * k, y: BOX.t, width: band, height: BOX.b - BOX.t, fill: "#fff3c4" }, svg);
    }
    var centre = ui.method === "partial" ? (FIT ? payload.center[0] : current.fit.mu) : current.complete;
    el("line", { x1: BOX.l, x2: BOX.r, y1: ys(centre), y2: ys(centre), stroke: COLORS.line, "stroke-dasharray": "6 4",
                 "stroke-width": 1.5, id: "grand-mean-line" }, svg);
    current.centre = centre;
    var layer = el("g", {}, svg);
    positions = [];
    for (var kk = 0; kk < J; kk++) {
      j = order[kk];
      var c = cl[j], x = xs(kk);
      if (ui.obs) for (i = 0; i < c.y.length; i++) {
        el("circle", { cx: x + (((i * 0.618034) % 1) - 0.5) * band * 0.5, cy: ys(c.y[i]), r: 1.6, fill: COLORS.obs,
                       "fill-opacity": 0.6 }, layer);
      }
      if (!FIT && ui.truth) marker("truth", x, ys(c.truth), layer);
      var est = estimateOf(c, ui.method);
      if (ui.method !== "no" && c.raw !== null) marker("no", x, ys(c.raw), layer, { "fill-opacity": 0.35 });
      if (FIT && ui.method === "partial") {
        el("line", { x1: x, x2: x, y1: ys(c.partial - c.condsd[0]), y2: ys(c.partial + c.condsd[0]),
                     stroke: COLORS.partial, "stroke-width": 2, "stroke-opacity": 0.6 }, layer);
      }
      if (ui.arrows && ui.method !== "no" && c.raw !== null) arrow(x, ys(c.raw), x, ys(est), layer);
      if (est !== null) marker(ui.method, x, ys(est), layer, { "class": "est" });
      positions[j] = [x, est === null ? ys(centre) : ys(est)];
      var hit = el("rect", { x: x - band / 2, y: BOX.t, width: band, height: BOX.b - BOX.t, fill: "transparent",
                             "data-group": j }, layer);
      hit.addEventListener("mouseenter", select.bind(null, j, false));
      hit.addEventListener("mouseleave", hideTip);
    }
  }

  function drawTwoDim(svg) {
    var cl = current.clusters, J = cl.length, j, xv = [], yv = [], cen = payload.center, Gm = payload.G;
    var r95 = Math.sqrt(-2 * Math.log(0.05));        // chi-square(2) 95% quantile, square-rooted
    var L11 = Math.sqrt(Math.max(Gm[0][0], 0)), L21 = L11 > 0 ? Gm[1][0] / L11 : 0,
        L22 = Math.sqrt(Math.max(Gm[1][1] - L21 * L21, 0)), ell = [];
    for (var t = 0; t <= 72; t++) {
      var a = 2 * Math.PI * t / 72, u = r95 * Math.cos(a), v = r95 * Math.sin(a);
      ell.push([cen[0] + L11 * u, cen[1] + L21 * u + L22 * v]);
      xv.push(ell[t][0]); yv.push(ell[t][1]);
    }
    for (j = 0; j < J; j++) {
      if (cl[j].raw[0] !== null && cl[j].raw[1] !== null) { xv.push(cl[j].raw[0]); yv.push(cl[j].raw[1]); }
      xv.push(cl[j].partial[0]); yv.push(cl[j].partial[1]);
    }
    var ex = extent(xv), ey = extent(yv);
    var xs = function (q) { return BOX.l + (q - ex[0]) / (ex[1] - ex[0]) * (BOX.r - BOX.l); };
    var ys = function (q) { return BOX.b - (q - ey[0]) / (ey[1] - ey[0]) * (BOX.b - BOX.t); };
    axes(svg, BOX, xs, ys, niceTicks(ex[0], ex[1], 8), niceTicks(ey[0], ey[1], 7),
         payload.terms[0] + " (per " + payload.group + ")", payload.terms[1] + " (per " + payload.group + ")");
    var d = "";
    for (t = 0; t < ell.length; t++) d += (t ? "L" : "M") + xs(ell[t][0]).toFixed(2) + "," + ys(ell[t][1]).toFixed(2);
    el("path", { d: d + "Z", fill: COLORS.ellipse, "fill-opacity": 0.08, stroke: COLORS.ellipse, "stroke-width": 1.8,
                 "stroke-dasharray": "7 4", id: "re-ellipse" }, svg);
    var layer = el("g", {}, svg);
    positions = [];
    for (j = 0; j < J; j++) {
      var c = cl[j], est = ui.method === "complete" ? cen : ui.method === "no" ? c.raw : c.partial;
      var hasRaw = c.raw[0] !== null && c.raw[1] !== null;
      if (ui.method !== "no" && hasRaw) marker("no", xs(c.raw[0]), ys(c.raw[1]), layer, { "fill-opacity": 0.35 });
      if (ui.arrows && ui.method !== "no" && hasRaw) arrow(xs(c.raw[0]), ys(c.raw[1]), xs(est[0]), ys(est[1]), layer);
      if (est[0] !== null) {
        var px = xs(est[0]), py = ys(est[1]);
        if (ui.selected === j) el("circle", { cx: px, cy: py, r: 10, fill: "none", stroke: "#1a1a1a", "stroke-width": 2 }, layer);
        if (ui.method !== "complete") marker(ui.method, px, py, layer, { "class": "est" });
        positions[j] = [px, py];
        var hit = el("circle", { cx: px, cy: py, r: 8, fill: "transparent", "data-group": j }, layer);
        hit.addEventListener("mouseenter", select.bind(null, j, false));
        hit.addEventListener("mouseleave", hideTip);
      } else {
        positions[j] = [xs(cen[0]), ys(cen[1])];
      }
    }
    var ccx = xs(cen[0]), ccy = ys(cen[1]);
    if (ui.method === "complete") marker("complete", ccx, ccy, layer, { "class": "est" });
    el("path", { d: "M" + (ccx - 7) + "," + ccy + "H" + (ccx + 7) + "M" + ccx + "," + (ccy - 7) + "V" + (ccy + 7),
                 stroke: "#1a1a1a", "stroke-width": 2 }, layer);
  }

  // ------------------------------------------------------------------ tooltip, tables, legend
  function rowsFor(j) {
    var c = current.clusters[j], rows = [["group size n\u2c7c", String(c.n)]], k;
    if (current.dim === 1) {
      if (!FIT) rows.push(["true mean", fmt(c.truth)]);
      rows.push([FIT ? "raw estimate" : "raw mean (no pooling)", fmt(c.raw)]);
      rows.push([FIT ? "BLUP (fixed + random effect)" : "partial pooling (BLUP)", fmt(c.partial)]);
      rows.push([FIT ? "fixed effect (complete pooling)" : "complete pooling", fmt(c.complete)]);
      rows.push(["shrinkage factor \u03bb\u2c7c", fmt(FIT ? c.lambda[0] : c.lambda)]);
      rows.push(["conditional SD", fmt(FIT ? c.condsd[0] : c.condsd)]);
    } else {
      for (k = 0; k < 2; k++) {
        var t = payload.terms[k];
        rows.push([t + ": raw", fmt(c.raw[k])], [t + ": BLUP", fmt(c.partial[k])],
                  [t + ": conditional SD", fmt(c.condsd[k])], [t + ": \u03bb", fmt(c.lambda[k])]);
      }
    }
    return rows;
  }
  function select(j, fromKeyboard) {
    if (ui.selected !== j) { ui.selected = j; render(true); }   // re-drawing only on change: no hover loop
    var tip = document.getElementById("tooltip"), rows = rowsFor(j), c = current.clusters[j], html = "";
    html += "<strong>" + (FIT ? escapeHtml(payload.group) + " " : "cluster ") + escapeHtml(c.label) + "</strong><table>";
    for (var i = 0; i < rows.length; i++) html += "<tr><td>" + escapeHtml(rows[i][0]) + "</td><td>" + rows[i][1] + "</td></tr>";
    tip.innerHTML = html + "</table>";
    tip.hidden = false;
    var svg = document.getElementById("chart"), scale = svg.getBoundingClientRect().width / 760, p = positions[j];
    var left = p[0] * scale + 14, wrapW = svg.getBoundingClientRect().width;
    if (left + tip.offsetWidth > wrapW) left = p[0] * scale - tip.offsetWidth - 14;
    tip.style.left = Math.max(0, left) + "px";
    tip.style.top = Math.max(0, p[1] * scale - tip.offsetHeight / 2) + "px";
    document.getElementById("live").textContent = (FIT ? payload.group + " " : "cluster ") + c.label + ": " +
      rows.map(function (r) { return r[0] + " " + r[1]; }).join("; ");
    if (fromKeyboard) tip.setAttribute("data-keyboard", "true"); else tip.removeAttribute("data-keyboard");
  }
  function hideTip() { document.getElementById("tooltip").hidden = true; }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }
  function legendItem(kind, text) {
    var span = document.createElement("span"), s = document.createElementNS(SVGNS, "svg");
    s.setAttribute("width", "16"); s.setAttribute("height", "16"); s.setAttribute("aria-hidden", "true");
    if (kind === "line") el("line", { x1: 0, x2: 16, y1: 8, y2: 8, stroke: COLORS.line, "stroke-dasharray": "4 3", "stroke-width": 2 }, s);
    else if (kind === "ellipse") el("ellipse", { cx: 8, cy: 8, rx: 7, ry: 5, fill: "none", stroke: COLORS.ellipse, "stroke-width": 2 }, s);
    else if (kind === "arrow") el("path", { d: "M1,8H12M9,4L14,8L9,12", stroke: COLORS.arrow, fill: "none", "stroke-width": 1.6 }, s);
    else marker(kind, 8, 8, s);
    span.appendChild(s);
    span.appendChild(document.createTextNode(text));
    return span;
  }
  function renderLegend() {
    var lg = document.getElementById("legend");
    lg.innerHTML = "";
    if (!FIT && ui.truth) lg.appendChild(legendItem("truth", "true cluster mean"));
    lg.appendChild(legendItem(ui.method, NAMES[ui.method] + (ui.method === "partial" && FIT && current.dim === 1 ? " (BLUP \u00b1 1 conditional SD)" : "")));
    if (ui.method !== "no") {
      var faded = legendItem("no", "raw estimate (no pooling, faded)");
      faded.querySelector("rect").setAttribute("fill-opacity", "0.35");
      lg.appendChild(faded);
    }
    if (ui.arrows && ui.method !== "no") lg.appendChild(legendItem("arrow", "shrinkage: raw \u2192 " + NAMES[ui.method].toLowerCase()));
    if (current.dim === 1) {
      lg.appendChild(legendItem("line", (FIT ? "fixed effect " : ui.method === "partial" ?
                                         "estimated grand mean \u03bc\u0302 = " : "grand mean ") + fmt(current.centre)));
    }
    else lg.appendChild(legendItem("ellipse", "95% region of the estimated random-effects distribution"));
  }
  function renderTables() {
    var P = document.getElementById("params"), html;
    if (!FIT) {
      var f = current.fit;
      html = "REML fit of <code>y ~ 1 + (1 | g)</code>: \u03bc\u0302 = " + fmt(f.mu) + ", \u03c4\u0302 = " + fmt(f.tau) +
             ", \u03c3\u0302 = " + fmt(f.sigma) + " &nbsp;(truth: \u03bc = " + fmt(S.mu) + ", \u03c3<sub>u</sub> = " +
             fmt(S.sigma_u) + ", \u03c3<sub>e</sub> = " + fmt(S.sigma_e) + "); N = " + current.y.length + " observations.";
      if (f.singular) html += "<br><span class='warn'>\u03c4\u0302 = 0: a singular fit (as lme4 reports). Partial pooling " +
                              "puts every cluster at \u03bc\u0302 (\u03bb\u2c7c = 0).</span>";
      P.innerHTML = html;
      var tb = document.querySelector("#mse-table tbody"), best = "partial", m = current.mse;
      ["complete", "no", "partial"].forEach(function (k) { if (m[k] < m[best]) best = k; });
      tb.innerHTML = "";
      ["complete", "no", "partial"].forEach(function (k) {
        var tr = document.createElement("tr");
        tr.id = "mse-" + k;
        if (k === best) tr.className = "best";
        tr.innerHTML = "<td>" + NAMES[k] + (k === best ? " (lowest)" : "") + "</td><td class='mse-value'>" + fmt(m[k]) +
                       "</td><td>" + (m.partial > 0 ? fmt(m[k] / m.partial) : "n/a") + "</td>";
        tb.appendChild(tr);
      });
    } else {
      html = "Fitted model <code>" + escapeHtml(payload.formula) + "</code>: " + payload.groups.length + " levels of " +
             escapeHtml(payload.group) + "; ";
      html += payload.terms.map(function (t, k) { return "SD(" + escapeHtml(t) + ") = " + fmt(payload.tau[k]); }).join(", ");
      if (payload.sigma !== null) html += ", residual SD \u03c3\u0302 = " + fmt(payload.sigma);
      if (payload.note) html += "<br><span class='warn'>" + escapeHtml(payload.note) + "</span>";
      P.innerHTML = html;
    }
    var head = document.querySelector("#group-table thead"), body = document.querySelector("#group-table tbody");
    var cols = FIT ? (current.dim === 1 ? ["n", "raw", "BLUP", "conditional SD", "\u03bb"] :
                      ["n"].concat([].concat.apply([], payload.terms.map(function (t) {
                        return [t + " raw", t + " BLUP", t + " cond. SD", t + " \u03bb"]; }))))
                   : ["n", "truth", "complete", "no pooling", "partial (BLUP)", "\u03bb"];
    head.innerHTML = "<tr><th scope='col'>" + (FIT ? escapeHtml(payload.group) : "cluster") + "</th>" +
                     cols.map(function (c) { return "<th scope='col'>" + escapeHtml(c) + "</th>"; }).join("") + "</tr>";
    var out = [];
    current.clusters.forEach(function (c) {
      var v;
      if (!FIT) v = [c.n, fmt(c.truth), fmt(c.complete), fmt(c.raw), fmt(c.partial), fmt(c.lambda)];
      else if (current.dim === 1) v = [c.n, fmt(c.raw), fmt(c.partial), fmt(c.condsd[0]), fmt(c.lambda[0])];
      else {
        v = [c.n];
        for (var k = 0; k < 2; k++) v.push(fmt(c.raw[k]), fmt(c.partial[k]), fmt(c.condsd[k]), fmt(c.lambda[k]));
      }
      out.push("<tr><td>" + escapeHtml(c.label) + "</td><td>" + v.join("</td><td>") + "</td></tr>");
    });
    body.innerHTML = out.join("");
  }

  function render(keepTip) {
    var svg = document.getElementById("chart");
    clearSvg(svg);
    defs(svg);
    if (current.dim === 1) drawOneDim(svg); else drawTwoDim(svg);
    renderLegend();
    if (!keepTip) { renderTables(); hideTip(); }
    ["complete", "no", "partial"].forEach(function (k) {
      document.getElementById("btn-" + k).setAttribute("aria-pressed", String(ui.method === k));
    });
  }
  function recompute() {
    current = FIT ? computeFit() : computeSimulation();
    if (ui.selected >= current.clusters.length) ui.selected = -1;
    render(false);
  }

  // ------------------------------------------------------------------ controls
  var SLIDERS = ["J", "n", "sigma_u", "sigma_e"];
  function setOutput(name) {
    var out = document.getElementById("out-" + name), inp = document.getElementById("ctl-" + name);
    out.textContent = String(S[name]);
    inp.setAttribute("aria-valuetext", String(S[name]));
  }
  function csvText() {
    var lines = ["y,g"];
    for (var i = 0; i < current.y.length; i++) lines.push(String(current.y[i]) + "," + current.g[i]);
    return lines.join("\n") + "\n";
  }
  function exportCsv() {
    var blob = new Blob([csvText()], { type: "text/csv" }), a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "pooling_seed" + S.seed + ".csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  }
  function init() {
    var intro = document.getElementById("mfx-intro");
    if (FIT) {
      document.getElementById("sim-controls").hidden = true;
      document.getElementById("btn-csv").hidden = true;
      document.getElementById("lbl-truth").hidden = true;
      document.getElementById("mse-table").hidden = true;
      if (payload.dim === 2) document.getElementById("lbl-obs").hidden = true;
      if (!payload.groups.some(function (g) { return g.y && g.y.length; })) document.getElementById("lbl-obs").hidden = true;
      document.getElementById("chart-label").textContent = payload.dim === 1 ?
        "Raw estimates and BLUPs per " + payload.group : "Raw and BLUP coefficients per " + payload.group;
      intro.textContent = payload.dim === 1 ?
        "Each column is one level of " + payload.group + ": its raw (no-pooling) estimate, its BLUP (partial pooling) " +
        "and the fixed effect (complete pooling). Small groups and noisy groups are pulled harder toward the fixed effect." :
        "Each point is one level of " + payload.group + ": its own least-squares coefficients (no pooling) and its BLUP " +
        "(partial pooling), pulled toward the fixed effects (cross) along the shape of the estimated random-effects covariance.";
    } else {
      intro.textContent = "Simulated clustered data: cluster means drawn around \u03bc with SD \u03c3\u1d64, observations " +
        "around them with SD \u03c3\u2091. Complete pooling uses one grand mean, no pooling each cluster's own mean, partial " +
        "pooling a REML fit of y ~ 1 + (1 | g) computed in this page: each mean pulled toward \u03bc\u0302 by 1 \u2212 \u03bb\u2c7c.";
      SLIDERS.forEach(function (name) {
        var inp = document.getElementById("ctl-" + name);
        inp.value = String(S[name]);
        setOutput(name);
        inp.addEventListener("input", function () {
          S[name] = name === "J" || name === "n" ? parseInt(inp.value, 10) : parseFloat(inp.value);
          setOutput(name);
          recompute();
        });
      });
      var seed = document.getElementById("ctl-seed");
      seed.value = String(S.seed);
      seed.addEventListener("change", function () {
        var v = parseInt(seed.value, 10);
        if (isFinite(v) && v >= 0) { S.seed = v; recompute(); } else seed.value = String(S.seed);
      });
      document.getElementById("btn-newseed").addEventListener("click", function () {
        S.seed = (S.seed + 1) % 2147483647; seed.value = String(S.seed); recompute();
      });
      document.getElementById("btn-csv").addEventListener("click", exportCsv);
    }
    ["complete", "no", "partial"].forEach(function (k) {
      document.getElementById("btn-" + k).addEventListener("click", function () { ui.method = k; render(false); });
    });
    [["chk-truth", "truth"], ["chk-obs", "obs"], ["chk-arrows", "arrows"]].forEach(function (p) {
      var c = document.getElementById(p[0]);
      c.checked = ui[p[1]];
      c.addEventListener("change", function () { ui[p[1]] = c.checked; render(false); });
    });
    var svg = document.getElementById("chart");
    svg.addEventListener("keydown", function (ev) {
      var J = current.clusters.length, order = current.order || current.clusters.map(function (_, i) { return i; });
      var k = ui.selected >= 0 ? order.indexOf(ui.selected) : -1, nk = k;
      if (ev.key === "ArrowRight" || ev.key === "ArrowDown") nk = Math.min(J - 1, k + 1);
      else if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") nk = Math.max(0, k - 1);
      else if (ev.key === "Home") nk = 0;
      else if (ev.key === "End") nk = J - 1;
      else if (ev.key === "Escape") { ui.selected = -1; hideTip(); render(true); return; }
      else return;
      ev.preventDefault();
      select(order[nk], true);
    });
    svg.addEventListener("blur", hideTip);
    recompute();
  }

  // ------------------------------------------------------------------ state for tests and notebooks
  function state() {
    var cl = current.clusters, pick = function (key) { return cl.map(function (c) { return c[key]; }); };
    var out = { mode: payload.mode, method: ui.method, dim: current.dim, labels: pick("label"), n: pick("n"),
                raw: pick("raw"), partial: pick("partial"), complete: current.complete };
    if (!FIT) {
      out.settings = { J: S.J, n: S.n, sigma_u: S.sigma_u, sigma_e: S.sigma_e, seed: S.seed, mu: S.mu };
      out.data = { y: current.y.slice(), g: current.g.slice() };
      out.truth = pick("truth"); out.blup = pick("blup"); out.lambda = pick("lambda"); out.condsd = pick("condsd");
      out.mu_hat = current.fit.mu; out.tau = current.fit.tau; out.sigma = current.fit.sigma;
      out.gamma = current.fit.gamma; out.singular = current.fit.singular;
      out.mse = { complete: current.mse.complete, no: current.mse.no, partial: current.mse.partial };
    } else {
      out.blup = pick("blup"); out.lambda = pick("lambda"); out.condsd = pick("condsd");
      out.center = payload.center; out.tau = payload.tau; out.sigma = payload.sigma; out.G = payload.G;
      out.group = payload.group; out.terms = payload.terms;
    }
    return out;
  }
  window.mfxExplorer = { state: state, csv: function () { return FIT ? null : csvText(); }, exportCsv: exportCsv,
                         fitOneWay: fitOneWay, select: function (j) { select(j, false); } };
  init();
})();
