namespace RolloutGate;

/// <summary>A configuration or environment problem that stops start-up; its message is written for the operator.</summary>
public sealed class StartupException(string message, Exception? inner = null) : Exception(message, inner);
