// Live alert feed: new alerts arrive over Server-Sent Events and are prepended.
// Text goes in through textContent only, so nothing from the server is parsed as HTML.
(function () {
  "use strict";
  var feed = document.getElementById("alert-feed");
  var status = document.getElementById("feed-status");
  if (!feed || !window.EventSource) { return; }
  var source = new EventSource("/api/alerts/stream");
  source.onopen = function () { status.textContent = "live"; };
  source.onerror = function () { status.textContent = "reconnecting…"; };
  source.addEventListener("alert", function (event) {
    var alert = JSON.parse(event.data);
    var item = document.createElement("li");
    item.className = "alert new rule-" + String(alert.rule).replace(/[^a-z_]/g, "");
    var when = document.createElement("time");
    when.textContent = String(alert.created_at).replace("T", " ").slice(0, 19);
    var rule = document.createElement("b");
    rule.textContent = alert.rule;
    item.appendChild(when);
    item.appendChild(document.createTextNode(" "));
    item.appendChild(rule);
    item.appendChild(document.createTextNode(" " + alert.message));
    feed.insertBefore(item, feed.firstChild);
  });
}());
