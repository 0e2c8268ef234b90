using System.Collections.Generic;
using System.Text;

namespace VmClone.Disks.Qcow2;

/// <summary>
/// The feature-name table extension: 48-byte entries of u8 type (0 incompatible, 1 compatible,
/// 2 autoclear), u8 bit, 46 bytes of name padded with NULs. What a refusal names a feature by.
/// </summary>
internal sealed class FeatureNameTable
{
    private readonly Dictionary<int, string> _names;

    private FeatureNameTable(Dictionary<int, string> names) => _names = names;

    public const int Incompatible = 0, Compatible = 1, Autoclear = 2;

    public static FeatureNameTable Parse(byte[]? data)
    {
        var names = new Dictionary<int, string>();
        if (data is not null)
        {
            for (int at = 0; at + 48 <= data.Length; at += 48)
            {
                string name = Encoding.UTF8.GetString(data, at + 2, 46).TrimEnd('\0');
                int key = (data[at] << 8) | data[at + 1];
                if (!names.ContainsKey(key))
                    names[key] = name;
            }
        }
        return new FeatureNameTable(names);
    }

    /// <summary>The name the image gives a feature bit, or null.</summary>
    public string? Name(int kind, int bit) => _names.TryGetValue((kind << 8) | bit, out string? n) && n.Length > 0 ? n : null;

    /// <summary>"incompatible feature bit 5 ("name")", with the name when the table has one.</summary>
    public string Describe(int kind, int bit)
    {
        string word = kind switch { Incompatible => "incompatible", Compatible => "compatible", _ => "autoclear" };
        return Name(kind, bit) is string n ? $"{word} feature bit {bit} (\"{n}\")" : $"{word} feature bit {bit}";
    }

    /// <summary>The table qemu writes into every version 3 image: the features this version of the format defines.</summary>
    public static byte[] Standard()
    {
        (int Kind, int Bit, string Name)[] features =
        {
            (Incompatible, 0, "dirty bit"),
            (Incompatible, 1, "corrupt bit"),
            (Incompatible, 2, "external data file"),
            (Incompatible, 3, "compression type"),
            (Incompatible, 4, "extended L2 entries"),
            (Compatible, 0, "lazy refcounts"),
            (Autoclear, 0, "bitmaps"),
            (Autoclear, 1, "raw external data"),
        };
        byte[] table = new byte[features.Length * 48];
        for (int i = 0; i < features.Length; i++)
        {
            table[i * 48] = (byte)features[i].Kind;
            table[i * 48 + 1] = (byte)features[i].Bit;
            Encoding.ASCII.GetBytes(features[i].Name).CopyTo(table, i * 48 + 2);
        }
        return table;
    }
}
