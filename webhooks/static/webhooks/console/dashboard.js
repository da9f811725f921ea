/* The dashboard's charts, drawn with the vendored Chart.js from the data the page carries
   in <script id="dashboard-data" type="application/json">. Text and grid colours are
   read from the admin's CSS variables and redrawn when the theme changes. */
"use strict";
(function () {
    const COLOURS = {
        succeeded: "#2e9e5b",
        retrying: "#e0a21b",
        exhausted: "#d14343",
        rate: "#3b82c4",
        p50: "#3b82c4",
        p95: "#9b59b6",
    };
    const charts = [];

    function cssVar(name) {
        return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    }

    function scales(yTitle, extra) {
        const text = cssVar("--body-quiet-color");
        const grid = cssVar("--hairline-color");
        return {
            x: Object.assign({ ticks: { color: text, maxRotation: 0, autoSkipPadding: 12 },
                               grid: { color: grid } }, extra.x || {}),
            y: Object.assign({ ticks: { color: text }, grid: { color: grid },
                               title: { display: true, text: yTitle, color: text },
                               beginAtZero: true }, extra.y || {}),
        };
    }

    function options(yTitle, extra) {
        return {
            responsive: true,
            maintainAspectRatio: false,
            animation: false,
            interaction: { mode: "index", intersect: false },
            spanGaps: true,
            plugins: { legend: { labels: { color: cssVar("--body-fg"), boxWidth: 12 } } },
            scales: scales(yTitle, extra),
        };
    }

    function line(label, values, colour) {
        return { label: label, data: values, borderColor: colour, backgroundColor: colour,
                 pointRadius: 0, borderWidth: 2, tension: 0.2 };
    }

    function draw(data) {
        charts.splice(0).forEach((chart) => chart.destroy());
        const labels = data.labels;
        charts.push(new Chart(document.getElementById("chart-outcomes"), {
            type: "bar",
            data: {
                labels: labels,
                datasets: [
                    { label: "succeeded", data: data.succeeded, backgroundColor: COLOURS.succeeded },
                    { label: "failed, will retry", data: data.retrying, backgroundColor: COLOURS.retrying },
                    { label: "exhausted", data: data.exhausted, backgroundColor: COLOURS.exhausted },
                ],
            },
            options: options("attempts / min", { x: { stacked: true }, y: { stacked: true } }),
        }));
        charts.push(new Chart(document.getElementById("chart-success"), {
            type: "line",
            data: { labels: labels, datasets: [line("success rate %", data.success_rate, COLOURS.rate)] },
            options: options("%", { y: { beginAtZero: false, suggestedMin: 90, max: 100 } }),
        }));
        charts.push(new Chart(document.getElementById("chart-latency"), {
            type: "line",
            data: {
                labels: labels,
                datasets: [line("p50", data.p50, COLOURS.p50), line("p95", data.p95, COLOURS.p95)],
            },
            options: options("ms", {}),
        }));
    }

    function start() {
        const source = document.getElementById("dashboard-data");
        if (!source || typeof Chart === "undefined") {
            return;
        }
        const data = JSON.parse(source.textContent);
        draw(data);
        // The admin's theme toggle sets <html data-theme>; "auto" follows the system.
        new MutationObserver(() => draw(data)).observe(
            document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
        window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => draw(data));
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
})();
