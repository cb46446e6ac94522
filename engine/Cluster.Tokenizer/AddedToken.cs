namespace Cluster.Tokenizer;

/// <summary>A token of tokenizer.json's added_tokens, matched in the text before pre-tokenization.</summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord, bool LeftStrip, bool RightStrip, bool Normalized);
