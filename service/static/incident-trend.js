// The incident trend chart: data from the <script type="application/json" id="trend-data"> block.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("trend-data").textContent);
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  var canvas = document.getElementById("trend-chart");
  if (!canvas || !window.Chart) return;
  var datasets = data.releases.map(function (r, n) {
    var color = r === "no release" ? "#b8c2cc" : PALETTE[n % PALETTE.length];
    return {label: r, data: data.series[r], backgroundColor: color, borderWidth: 0, stack: "score"};
  });
  new Chart(canvas, {
    type: "bar",
    data: {labels: data.labels, datasets: datasets},
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: {x: {stacked: true, ticks: {maxRotation: 0, autoSkip: true}}, y: {stacked: true, beginAtZero: true, title: {display: true, text: "score"}, ticks: {precision: 0}}},
      plugins: {
        legend: {position: "bottom"},
        tooltip: {callbacks: {footer: function (items) { return items.length ? data.incidents[items[0].dataIndex] : []; }}}
      },
      onClick: function (event, elements) {
        if (!elements.length) return;
        var week = data.labels[elements[0].index];
        var target = document.getElementById("week-" + week);
        if (target) { target.open = true; target.scrollIntoView({behavior: "smooth", block: "start"}); }
      }
    }
  });
})();
