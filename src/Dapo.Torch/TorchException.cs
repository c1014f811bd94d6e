namespace Dapo.Torch;

/// <summary>A failure inside the native engine, carrying the engine's message (a bad argument, or a libtorch error).</summary>
public sealed class TorchException(string message) : Exception(message);
