using System.Globalization;
using RolloutGate.Tests.Infrastructure;

namespace RolloutGate.Tests.Dashboard;

/// <summary>Rows of <c>evaluations</c> as the watch stores them, written straight into the test database.</summary>
public static class EvaluationSeed
{
    /// <summary>
    /// One evaluation a minute from the deployment's deploy time; the baseline is the first value and the threshold
    /// 20 % above it; evaluations from index <paramref name="regressedFrom"/> on are regressions.
    /// </summary>
    public static async Task InsertAsync(
        TestService service, string deploymentId, string metric, double[] values, int? regressedFrom = null, string explanation = "seeded")
    {
        var deployed = await service.Database.ScalarAsync<DateTime>($"SELECT deployed_at FROM deployments WHERE id = {Sql(deploymentId)}");
        for (var i = 0; i < values.Length; i++)
        {
            var at = DateTime.SpecifyKind(deployed, DateTimeKind.Utc).AddMinutes(i + 1).ToString("O", CultureInfo.InvariantCulture);
            await service.Database.ExecuteAsync($"""
                INSERT INTO evaluations (deployment_id, metric, at, value, baseline, threshold, statistic, verdict, explanation, query, state, evaluated_at)
                VALUES ({Sql(deploymentId)}, {Sql(metric)}, '{at}', {Num(values[i])}, {Num(values[0])}, {Num(values[0] * 1.2)}, 0,
                        '{(i >= (regressedFrom ?? values.Length) ? "regressed" : "healthy")}', {Sql(explanation)}, 'seeded', '{"{}"}'::jsonb, '{at}')
                """);
        }
    }

    private static string Sql(string text) => "'" + text.Replace("'", "''", StringComparison.Ordinal) + "'";

    private static string Num(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
