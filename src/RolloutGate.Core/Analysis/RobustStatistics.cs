namespace RolloutGate.Core.Analysis;

/// <summary>Median and median absolute deviation: location and scale that a few outliers cannot move.</summary>
internal static class RobustStatistics
{
    /// <summary>1.4826 × MAD estimates the standard deviation of normal data (Rousseeuw and Croux 1993).</summary>
    public const double MadToSigma = 1.4826;

    public static double Median(Span<double> values)
    {
        if (values.Length == 0)
        {
            return double.NaN;
        }

        values.Sort();
        var mid = values.Length / 2;
        return values.Length % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
    }

    public static double Median(IEnumerable<double> values) => Median(values.ToArray().AsSpan());

    public static double Mad(IReadOnlyList<double> values)
    {
        var median = Median(values);
        return Median(values.Select(v => Math.Abs(v - median)));
    }
}
