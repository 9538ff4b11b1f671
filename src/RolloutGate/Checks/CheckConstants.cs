namespace RolloutGate.Checks;

public static class CheckConstants
{
    public const string AlertmanagerHttpClient = "RolloutGate.Checks.Alertmanager";

    /// <summary>Plain, without retries: an http check reports what the endpoint answers now, within its timeout.</summary>
    public const string HttpCheckHttpClient = "RolloutGate.Checks.Http";

    /// <summary>How much of a response body an http check reads looking for its substring.</summary>
    public const int MaxBodyBytes = 1024 * 1024;

    /// <summary>How many alerts a failing alertmanager check names before "and N more".</summary>
    public const int MaxAlertsNamed = 5;
}
