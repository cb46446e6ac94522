namespace Cluster.Engine.Model;

/// <summary>
/// Routed experts hosted elsewhere could not run (their host unreachable, its stream broken, or it refused the rows):
/// a peer is unavailable, the model is not wrong. A scheduler tells the two apart by this type without knowing how the
/// experts are reached.
/// </summary>
public class RoutedExpertsUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
