// Column sorting for tables marked data-sortable. Optional: pages are complete without it.
// Cells may carry data-sort (the value to sort by); empty values always sort last.
(function () {
  "use strict";
  function value(row, i) {
    var cell = row.cells[i];
    if (!cell) return "";
    var v = cell.getAttribute("data-sort");
    return v === null ? cell.textContent.trim() : v;
  }
  function compare(type, dir) {
    return function (a, b) {
      var x = a.v, y = b.v;
      if (x === "" || y === "") return (x === "") - (y === "") || a.i - b.i;
      var c = type === "num" ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return c * dir || a.i - b.i;
    };
  }
  function sortBy(table, th, index) {
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var body = table.tBodies[0];
    var rows = Array.prototype.map.call(body.rows, function (r, i) {
      return { r: r, v: value(r, index), i: i };
    });
    rows.sort(compare(th.getAttribute("data-type") || "text", dir));
    rows.forEach(function (x) { body.appendChild(x.r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }
  document.querySelectorAll("table[data-sortable]").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () { sortBy(table, th, index); });
    });
  });
})();
