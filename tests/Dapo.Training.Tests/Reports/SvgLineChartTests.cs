using System.Xml.Linq;
using Dapo.Training.Reports;

namespace Dapo.Training.Tests.Reports;

public sealed class SvgLineChartTests
{
    [Fact]
    public void A_chart_is_well_formed_svg_with_one_polyline_point_per_data_point()
    {
        var chart = new SvgLineChart("Accuracy <held-out> & more", "step", "avg@8") { YRange = (0, 1) };
        chart.Series.Add(new ChartSeries("DAPO", [(0, 0.2), (10, 0.35), (20, 0.5)], [(0, 0.18, 0.22), (10, 0.3, 0.4), (20, 0.45, 0.55)]));
        chart.Series.Add(new ChartSeries("GRPO \"naive\"", [(0, 0.2), (10, 0.25), (20, 0.3)]));
        var svg = XDocument.Parse(chart.Render());
        XNamespace ns = "http://www.w3.org/2000/svg";
        var lines = svg.Descendants(ns + "polyline").ToList();
        Assert.Equal(["DAPO", "GRPO \"naive\""], lines.Select(l => (string)l.Attribute("data-name")!));
        Assert.All(lines, l => Assert.Equal(3, ((string)l.Attribute("points")!).Split(' ').Length));
        Assert.Single(svg.Descendants(ns + "polygon"));
        Assert.Contains(svg.Descendants(ns + "text"), t => t.Value == "Accuracy <held-out> & more");
        // y = 0.5 at the top-right point sits halfway up the plot area: 420 - 52 - 0.5 * (420 - 40 - 52) = 204.
        Assert.EndsWith("204.0", ((string)lines[0].Attribute("points")!).Split(' ')[2]);
    }

    [Theory]
    [InlineData(0, 1, new[] { 0, 0.2, 0.4, 0.6, 0.8, 1 })]
    [InlineData(0, 100, new[] { 0.0, 20, 40, 60, 80, 100 })]
    [InlineData(3, 47, new[] { 0.0, 10, 20, 30, 40, 50 })]
    public void Ticks_are_round_and_cover_the_range(double min, double max, double[] expected) =>
        Assert.Equal(expected, SvgLineChart.Ticks(min, max));

    [Fact]
    public void An_empty_chart_is_an_error_not_an_empty_picture() =>
        Assert.Throws<InvalidOperationException>(() => new SvgLineChart("t", "x", "y").Render());
}
