"""The Kivy screens: they only show and forward to mobile.core.field.FieldSession."""
