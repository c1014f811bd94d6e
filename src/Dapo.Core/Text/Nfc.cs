using System.Runtime.InteropServices;

namespace Dapo.Core.Text;

/// <summary>
/// Unicode NFC, the normaliser of Hugging Face tokenizers, through the system's ICU (libicuuc). Dapo runs with .NET's
/// invariant globalization, whose <see cref="string.Normalize()"/> leaves text as it is; ICU is there anyway where
/// .NET runs (Debian: libicu72). Text below U+0300 is NFC already and never reaches ICU.
/// </summary>
public static unsafe class Nfc
{
    private static readonly Lazy<(nint Normalizer, nint Normalize, nint IsNormalized)> Icu = new(LoadIcu);

    /// <summary><paramref name="text"/> in NFC (the same string when it is NFC already).</summary>
    /// <exception cref="InvalidOperationException">The system has no ICU library.</exception>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!text.AsSpan().ContainsAnyInRange('\u0300', '\uFFFF')) return text;
        var (normalizer, normalize, isNormalized) = Icu.Value;
        var error = 0;
        fixed (char* source = text)
        {
            var normalized = ((delegate* unmanaged<nint, char*, int, int*, sbyte>)isNormalized)(normalizer, source, text.Length, &error);
            Check(error);
            if (normalized != 0) return text;
            // NFC of a string is at most 3x as long (Unicode's bound for NFC expansion).
            var buffer = new char[text.Length * 3 + 16];
            fixed (char* target = buffer)
            {
                var length = ((delegate* unmanaged<nint, char*, int, char*, int, int*, int>)normalize)(normalizer, source, text.Length, target, buffer.Length, &error);
                Check(error);
                return new string(target, 0, length);
            }
        }
    }

    private static void Check(int error)
    {
        if (error > 0) throw new InvalidOperationException($"ICU's NFC normalisation failed with error {error}.");  // <= 0: success or a warning
    }

    private static (nint, nint, nint) LoadIcu()
    {
        // ICU's exports carry its major version (unorm2_normalize_72); look for the library from the newest version down.
        for (var version = 90; version >= 50; version--)
        {
            if (!NativeLibrary.TryLoad($"libicuuc.so.{version}", out var library)) continue;
            nint Export(string name) =>
                NativeLibrary.TryGetExport(library, $"{name}_{version}", out var address) || NativeLibrary.TryGetExport(library, name, out address)
                    ? address
                    : throw new InvalidOperationException($"libicuuc.so.{version} has no {name}.");
            var error = 0;
            var normalizer = ((delegate* unmanaged<int*, nint>)Export("unorm2_getNFCInstance"))(&error);
            if (error > 0 || normalizer == 0) throw new InvalidOperationException($"ICU {version} gave no NFC normaliser (error {error}).");
            return (normalizer, Export("unorm2_normalize"), Export("unorm2_isNormalized"));
        }
        throw new InvalidOperationException(
            "NFC normalisation of tokenizer input needs the system's ICU library (libicuuc.so.N; Debian: apt-get install libicu72).");
    }
}
