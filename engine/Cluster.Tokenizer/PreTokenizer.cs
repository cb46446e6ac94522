namespace Cluster.Tokenizer;

/// <summary>
/// tokenizer.json's pre-tokenizer: a sequence of Isolated splits, each applied to every piece the previous one made,
/// so a later pattern never sees across an earlier split (its lookahead ends at the piece's end). The ByteLevel step
/// that follows only maps bytes to characters, which the BPE does itself.
/// </summary>
internal sealed class PreTokenizer(SplitPattern[] steps)
{
    /// <summary>Appends the (start, length) of every pre-token of <paramref name="text"/>, in order.</summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int Length)> words) => Split(text, 0, 0, words);

    private void Split(ReadOnlySpan<char> piece, int offset, int step, List<(int Start, int Length)> words)
    {
        if (piece.IsEmpty) return;
        if (step == steps.Length)
        {
            words.Add((offset, piece.Length));
            return;
        }
        SplitPattern pattern = steps[step];
        int pos = 0;
        while (pattern.Find(piece, pos, out int start, out int end))
        {
            Split(piece[pos..start], offset + pos, step + 1, words);
            Split(piece[start..end], offset + start, step + 1, words);
            pos = end;
        }
        Split(piece[pos..], offset + pos, step + 1, words);
    }
}
