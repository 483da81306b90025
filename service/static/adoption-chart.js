// The adoption page's charts: data from the <script type="application/json" id="adoption-data"> block.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("adoption-data").textContent);
  var MAX_SHOWN = 8;  // newest versions drawn on their own; older ones are summed
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  var OLDER = "#b8c2cc";

  function firstIndexOnOrAfter(day) {
    for (var i = 0; i < data.days.length; i++) { if (data.days[i] >= day) return i; }
    return -1;
  }
  var markers = [];
  data.releases.forEach(function (r) {
    if (r.beta_at) markers.push({i: firstIndexOnOrAfter(r.beta_at), label: r.version, dash: [4, 3]});
    if (r.rolled_out_at) markers.push({i: firstIndexOnOrAfter(r.rolled_out_at), label: "", dash: []});
  });
  var releaseLines = {
    id: "releaseLines",
    afterDatasetsDraw: function (chart) {
      var ctx = chart.ctx, x = chart.scales.x, area = chart.chartArea;
      ctx.save();
      ctx.font = "11px system-ui, sans-serif";
      ctx.fillStyle = "#33485e";
      markers.forEach(function (m) {
        if (m.i < 0) return;
        var px = x.getPixelForValue(m.i);
        ctx.strokeStyle = "rgba(20, 30, 45, 0.65)";
        ctx.lineWidth = 1;
        ctx.setLineDash(m.dash);
        ctx.beginPath(); ctx.moveTo(px, area.top); ctx.lineTo(px, area.bottom); ctx.stroke();
        if (m.label && chart.canvas.id === "chart-all") {
          ctx.save();
          ctx.translate(px + 3, area.top + 4);
          ctx.rotate(Math.PI / 2);
          ctx.fillText(m.label, 0, 0);
          ctx.restore();
        }
      });
      ctx.restore();
    }
  };

  function datasets(channel) {
    var series = data.channels[channel];
    var versions = data.versions;
    var older = versions.slice(0, Math.max(0, versions.length - MAX_SHOWN));
    var shown = versions.slice(older.length);
    var out = [];
    if (older.length) {
      var sum = data.days.map(function (_, i) {
        return older.reduce(function (acc, v) { return acc + series.shares[v][i]; }, 0);
      });
      out.push({label: "older (" + older[0] + " – " + older[older.length - 1] + ")", data: sum, color: OLDER});
    }
    shown.forEach(function (v, n) {
      out.push({label: v, data: series.shares[v], color: PALETTE[(shown.length - 1 - n) % PALETTE.length]});
    });
    return out.map(function (d, n) {
      return {
        label: d.label,
        data: d.data.map(function (s) { return Math.round(s * 1000) / 10; }),
        backgroundColor: d.color + (d.color.length === 7 ? "cc" : ""),
        borderColor: d.color,
        borderWidth: 1,
        pointRadius: 0,
        fill: n === 0 ? "origin" : "-1",
        tension: 0
      };
    });
  }

  function draw(id, channel, legend) {
    var canvas = document.getElementById(id);
    if (!canvas || !window.Chart) return;
    new Chart(canvas, {
      type: "line",
      data: {labels: data.days, datasets: datasets(channel)},
      options: {
        animation: false,
        maintainAspectRatio: false,
        interaction: {mode: "index", intersect: false},
        scales: {
          x: {ticks: {maxTicksLimit: legend ? 10 : 5, autoSkip: true, maxRotation: 0}, grid: {display: false}},
          y: {stacked: true, min: 0, max: 100, ticks: {callback: function (v) { return v + " %"; }}}
        },
        plugins: {
          legend: {display: legend, position: "right", reverse: true, labels: {boxWidth: 14}},
          tooltip: {itemSort: function (a, b) { return b.datasetIndex - a.datasetIndex; },
                    callbacks: {label: function (c) { return " " + c.dataset.label + ": " + c.parsed.y.toFixed(1) + " %"; }}},
          title: {display: false}
        }
      },
      plugins: [releaseLines]
    });
  }
  draw("chart-all", "all", true);
  draw("chart-beta", "beta", false);
  draw("chart-stable", "stable", false);
  document.body.dataset.chartsDrawn = "yes";
})();
