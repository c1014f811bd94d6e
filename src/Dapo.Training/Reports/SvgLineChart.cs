using System.Globalization;
using System.Security;
using System.Text;

namespace Dapo.Training.Reports;

/// <summary>One line of a chart: its points and, optionally, a band around it (the spread over seeds).</summary>
/// <param name="Name">Legend label.</param>
/// <param name="Points">(x, y) in data units, in x order.</param>
/// <param name="Band">(x, low, high) for a shaded band, or null.</param>
public sealed record ChartSeries(string Name, IReadOnlyList<(double X, double Y)> Points, IReadOnlyList<(double X, double Low, double High)>? Band = null);

/// <summary>
/// A small, dependency-free SVG line chart: axes with "nice" ticks, one coloured line per series (with an optional
/// shaded band), a legend. The output is a standalone SVG document that browsers and GitHub render.
/// </summary>
public sealed class SvgLineChart(string title, string xLabel, string yLabel)
{
    private static readonly string[] Palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
    private const double PlotWidth = 466, Height = 420, Left = 64, Top = 40, Bottom = 52;

    public List<ChartSeries> Series { get; } = [];

    /// <summary>Fixed y range (e.g. 0..1 for accuracy); null fits the data.</summary>
    public (double Min, double Max)? YRange { get; init; }

    public string Render()
    {
        var points = Series.SelectMany(s => s.Points).ToList();
        if (points.Count == 0) throw new InvalidOperationException($"Chart '{title}' has no points.");
        var bandValues = Series.Where(s => s.Band is not null).SelectMany(s => s.Band!).SelectMany(b => new[] { b.Low, b.High });
        var (xMin, xMax) = Range(points.Select(p => p.X));
        var (yMin, yMax) = YRange ?? Range(points.Select(p => p.Y).Concat(bandValues));
        var xTicks = Ticks(xMin, xMax);
        var yTicks = Ticks(yMin, yMax);
        (xMin, xMax) = (Math.Min(xMin, xTicks[0]), Math.Max(xMax, xTicks[^1]));
        if (YRange is null) (yMin, yMax) = (Math.Min(yMin, yTicks[0]), Math.Max(yMax, yTicks[^1]));
        // The legend column is as wide as its longest label (about 7 px a character at font size 12).
        const double plotRight = Left + PlotWidth;
        var width = plotRight + Math.Max(190, 54 + 7.0 * Series.Max(s => s.Name.Length));
        double Px(double x) => Left + (x - xMin) / (xMax - xMin) * PlotWidth;
        double Py(double y) => Height - Bottom - (y - yMin) / (yMax - yMin) * (Height - Top - Bottom);

        var svg = new StringBuilder();
        svg.Append(F($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{Height}\" viewBox=\"0 0 {width} {Height}\" font-family=\"sans-serif\" font-size=\"12\">\n"));
        svg.Append(F($"<rect width=\"{width}\" height=\"{Height}\" fill=\"white\"/>\n"));
        svg.Append(F($"<text x=\"{width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{Escape(title)}</text>\n"));
        foreach (var t in yTicks.Where(t => t >= yMin && t <= yMax))
        {
            svg.Append(F($"<line x1=\"{Left}\" y1=\"{Py(t):F1}\" x2=\"{plotRight}\" y2=\"{Py(t):F1}\" stroke=\"#e5e5e5\"/>\n"));
            svg.Append(F($"<text x=\"{Left - 6}\" y=\"{Py(t) + 4:F1}\" text-anchor=\"end\">{Label(t)}</text>\n"));
        }
        foreach (var t in xTicks.Where(t => t >= xMin && t <= xMax))
            svg.Append(F($"<text x=\"{Px(t):F1}\" y=\"{Height - Bottom + 18}\" text-anchor=\"middle\">{Label(t)}</text>\n"));
        svg.Append(F($"<line x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{plotRight}\" y2=\"{Height - Bottom}\" stroke=\"black\"/>\n"));
        svg.Append(F($"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Height - Bottom}\" stroke=\"black\"/>\n"));
        svg.Append(F($"<text x=\"{(Left + plotRight) / 2}\" y=\"{Height - 12}\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n"));
        svg.Append(F($"<text x=\"16\" y=\"{(Top + Height - Bottom) / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {(Top + Height - Bottom) / 2})\">{Escape(yLabel)}</text>\n"));
        for (var i = 0; i < Series.Count; i++)
        {
            var s = Series[i];
            var colour = Palette[i % Palette.Length];
            if (s.Band is { Count: > 0 } band)
            {
                var outline = band.Select(b => F($"{Px(b.X):F1},{Py(b.High):F1}"))
                    .Concat(band.Reverse().Select(b => F($"{Px(b.X):F1},{Py(b.Low):F1}")));
                svg.Append($"<polygon points=\"{string.Join(' ', outline)}\" fill=\"{colour}\" fill-opacity=\"0.15\" stroke=\"none\"/>\n");
            }
            var line = string.Join(' ', s.Points.Select(p => F($"{Px(p.X):F1},{Py(p.Y):F1}")));
            svg.Append($"<polyline class=\"series\" data-name=\"{Escape(s.Name)}\" points=\"{line}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>\n");
            var ly = Top + 8 + i * 20;
            svg.Append(F($"<line x1=\"{plotRight + 12}\" y1=\"{ly}\" x2=\"{plotRight + 36}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"3\"/>\n"));
            svg.Append(F($"<text x=\"{plotRight + 42}\" y=\"{ly + 4}\">{Escape(s.Name)}</text>\n"));
        }
        svg.Append("</svg>\n");
        return svg.ToString();
    }

    private static (double Min, double Max) Range(IEnumerable<double> values)
    {
        var list = values.Where(double.IsFinite).ToList();
        if (list.Count == 0) return (0, 1);
        var (min, max) = (list.Min(), list.Max());
        if (min == max) (min, max) = (min - 0.5, max + 0.5);
        return (min, max);
    }

    /// <summary>About five round tick values covering [min, max]: steps of 1, 2 or 5 times a power of ten.</summary>
    internal static double[] Ticks(double min, double max)
    {
        var raw = (max - min) / 5;
        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        var step = new[] { 1.0, 2.0, 5.0, 10.0 }.Select(m => m * magnitude).First(s => s >= raw);
        var first = Math.Floor(min / step) * step;
        var ticks = new List<double>();
        for (var t = first; t <= max + step * 1e-9; t += step) ticks.Add(Math.Round(t, 10));
        if (ticks[^1] < max) ticks.Add(ticks[^1] + step);
        return ticks.ToArray();
    }

    private static string Label(double v) => v.ToString(Math.Abs(v) >= 1000 || v == Math.Floor(v) ? "0" : "0.###", CultureInfo.InvariantCulture);

    private static string Escape(string text) => SecurityElement.Escape(text) ?? "";

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
